//! The unavoidable API cost of one tagwatch cycle: list the same ECR
//! repositories' images with the same SDK, the same page size and filter,
//! and the same concurrency, and do nothing else. `bench/fleet/run` times it
//! side by side with `tagwatch once` (issue 8).
//!
//! ```text
//! list_baseline --endpoint URL --region REGION --concurrency N --repositories FILE
//! ```
//!
//! FILE holds one repository name a line. Credentials come from the SDK's
//! default chain (the bench sets `AWS_ACCESS_KEY_ID`). Prints one JSON line:
//! `{"repositories", "pages", "images", "tags", "list_secs", "wall_secs"}`,
//! where `list_secs` is the listing alone and `wall_secs` also counts the
//! client's set-up; exits 1 if any listing failed.
//!
//! The request is built as `src/registry/ecr.rs` builds it
//! (`maxResults = 1000`, `tagStatus = TAGGED`, every page through the SDK's
//! paginator), at most `--concurrency` repositories at once through a
//! semaphore, as `reconcile::list_repositories` does; each page's image
//! details are kept until the repository is done, as tagwatch keeps them
//! for the cycle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, timeout::TimeoutConfig};
use aws_sdk_ecr::error::DisplayErrorContext;
use aws_sdk_ecr::types::{DescribeImagesFilter, ImageDetail, TagStatus};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The same page size and timeouts as `src/registry/ecr.rs`.
const PAGE_SIZE: i32 = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    endpoint: Option<String>,
    region: String,
    concurrency: usize,
    repositories: Vec<String>,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "list_baseline: {problem}\nusage: list_baseline [--endpoint URL] --region REGION \
         [--concurrency N] --repositories FILE"
    );
    std::process::exit(64)
}

fn parse_args() -> Args {
    let mut endpoint = None;
    let mut region = None;
    let mut concurrency = 8;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value()),
            "--region" => region = Some(value()),
            "--concurrency" => {
                concurrency = value()
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .unwrap_or_else(|| usage("--concurrency must be 1..=256"))
            }
            "--repositories" => file = Some(value()),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let file = file.unwrap_or_else(|| usage("--repositories is required"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| usage(&format!("cannot read {file}: {e}")));
    let mut repositories: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    // tagwatch lists the distinct repositories in sorted order.
    repositories.sort_unstable();
    repositories.dedup();
    Args {
        endpoint,
        region: region.unwrap_or_else(|| usage("--region is required")),
        concurrency,
        repositories,
    }
}

/// What one repository's listing cost.
struct Listed {
    pages: u64,
    images: u64,
    tags: u64,
}

async fn list(client: &aws_sdk_ecr::Client, repository: &str) -> Result<Listed, String> {
    let mut pages = client
        .describe_images()
        .repository_name(repository)
        .max_results(PAGE_SIZE)
        .filter(
            DescribeImagesFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .into_paginator()
        .send();
    let mut details: Vec<ImageDetail> = Vec::new();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("{repository}: {}", DisplayErrorContext(e)))?;
        count += 1;
        details.extend(page.image_details.unwrap_or_default());
    }
    Ok(Listed {
        pages: count,
        images: details.len() as u64,
        tags: details.iter().map(|d| d.image_tags().len() as u64).sum(),
    })
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let args = parse_args();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .region(Region::new(args.region.clone()))
        .load()
        .await;
    let mut ecr = aws_sdk_ecr::config::Builder::from(&sdk);
    if let Some(url) = &args.endpoint {
        ecr = ecr.endpoint_url(url);
    }
    let client = aws_sdk_ecr::Client::from_conf(ecr.build());

    let listing = Instant::now();
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    let repositories = args.repositories.len();
    for repository in args.repositories {
        let client = client.clone();
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            list(&client, &repository).await
        });
    }
    let (mut pages, mut images, mut tags, mut failed) = (0, 0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(l)) => {
                pages += l.pages;
                images += l.images;
                tags += l.tags;
            }
            Ok(Err(e)) => {
                eprintln!("list_baseline: {e}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("list_baseline: a listing task panicked: {e}");
                failed += 1;
            }
        }
    }
    let list_secs = listing.elapsed().as_secs_f64();
    println!(
        "{{\"repositories\": {}, \"pages\": {pages}, \"images\": {images}, \"tags\": {tags}, \
         \"failed\": {failed}, \"list_secs\": {list_secs:.6}, \"wall_secs\": {:.6}}}",
        repositories,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
