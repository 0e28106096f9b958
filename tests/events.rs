//! ECR push events through SQS (moto's SQS, driven by the real SDK): a push
//! event wakes a cycle for its apps within seconds, and a message that is
//! not an ECR event stays in the queue for the dead-letter queue.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The sum of the samples of `name` whose labels include `labels`, from
/// the daemon's `/metrics` on `port`.
fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, text) = http(&format!("http://127.0.0.1:{port}"), "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const EVENT: &str = r#"{"version":"0","id":"e1","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2026-11-21T10:00:00Z","region":"eu-west-1","resources":[],"detail":{"result":"SUCCESS","repository-name":"app","image-digest":"sha256:ab","action-type":"PUSH","image-tag":"1.1.0"}}"#;

#[test]
fn a_push_event_promotes_within_seconds_and_garbage_stays_queued() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    moto.seed("other", &[("1.0.0", 1)]);
    let queue = moto.boto3(
        "print(client('sqs').create_queue(QueueName='tagwatch-events', Attributes={'VisibilityTimeout': '1'})['QueueUrl'])",
    );
    let remote = GitRemote::new(&[
        ("values.yaml", "image:\n  tag: 1.0.0\n"),
        ("other.yaml", "image:\n  tag: 1.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[
            ("app", "app", "^1", "values.yaml"),
            ("other", "other", "^1", "other.yaml"),
        ],
    );
    // Polling only hourly: anything sooner came from the event.
    work.edit_config("interval = \"2m\"", "interval = \"1h\"");
    work.edit_config(
        "[git]",
        &format!("[aws.events]\nsqs_queue_url = \"{queue}\"\n\n[git]"),
    );
    let log = work.dir.path().join("daemon.log");
    // The SDK's standard per-service endpoint setting points SQS at moto.
    let daemon = Daemon::start_with_env(
        &work.config,
        &log,
        &[("AWS_ENDPOINT_URL_SQS", &moto.endpoint)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("listening for ECR push events")
        || !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cycle finished")
    {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(remote.subjects(), ["seed"]);

    // A push of 1.1.0 (and of `other`, which is not pushed): only app moves.
    moto.seed("app", &[("1.1.0", 2)]);
    moto.seed("other", &[("1.1.0", 2)]);
    let sent = Instant::now();
    moto.boto3(&format!(
        "q = client('sqs')\n\
         q.send_message(QueueUrl={queue:?}, MessageBody='{{not json')\n\
         q.send_message(QueueUrl={queue:?}, MessageBody={EVENT:?})\n"
    ));
    remote.wait_for_commits(
        2,
        sent + Duration::from_secs(10),
        "no promotion after the event",
    );
    let took = sent.elapsed();
    eprintln!("event to promotion: {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "the event took {took:?} to land"
    );
    assert_eq!(remote.subjects(), ["app: dev 1.0.0 -> 1.1.0", "seed"]);

    // The event was deleted once its cycle finished; the garbage is still
    // there (invisible while received, then back), never deleted.
    std::thread::sleep(Duration::from_secs(3));
    let counts = moto.boto3(&format!(
        "a = client('sqs').get_queue_attributes(QueueUrl={queue:?}, AttributeNames=['All'])['Attributes']\n\
         print(int(a['ApproximateNumberOfMessages']) + int(a['ApproximateNumberOfMessagesNotVisible']))"
    ));
    assert_eq!(counts, "1", "exactly the malformed message must remain");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("invalid event message").count(),
        1,
        "logged once by message id, however often it is received:\n{text}"
    );
    assert_eq!(
        remote.subjects().len(),
        2,
        "other was not reconciled by the event"
    );

    // A burst (a monorepo build pushing several images at once): one cycle.
    moto.seed("app", &[("1.2.0", 3)]);
    moto.seed("other", &[("1.1.0", 2)]);
    let other = EVENT.replace("\"app\"", "\"other\"");
    moto.boto3(&format!(
        "q = client('sqs')\n\
         for body in [{EVENT:?}, {other:?}, {EVENT:?}]:\n    q.send_message(QueueUrl={queue:?}, MessageBody=body)\n"
    ));
    remote.wait_for_commits(
        4,
        Instant::now() + Duration::from_secs(10),
        "the burst was not promoted",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("push events; reconciling their apps").count(),
        2,
        "one cycle for the first event, one for the whole burst:\n{text}"
    );
    drop(daemon);
}

/// SIGHUP re-reads the configuration: a broken file is refused and the
/// daemon goes on with the old one; a good file adds an app at once.
#[test]
fn sighup_reloads_and_a_broken_file_keeps_the_old_configuration() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1), ("1.1.0", 2)]);
    moto.seed("new", &[("2.0.0", 1), ("2.1.0", 2)]);
    let remote = GitRemote::new(&[
        ("values.yaml", "image:\n  tag: 1.0.0\n"),
        ("new.yaml", "image:\n  tag: 2.0.0\n"),
    ]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "values.yaml")],
    );
    work.edit_config("interval = \"2m\"", "interval = \"1s\"");
    let port = free_port();
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let good = std::fs::read_to_string(&work.config).unwrap();
    let reloads = |outcome: &str| {
        metric(
            port,
            "tagwatch_config_reloads_total",
            &[("outcome", outcome)],
        )
    };
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start(&work.config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    remote.wait_for_commits(2, deadline, "app was not promoted");
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &daemon.pid().to_string()])
            .status()
            .unwrap()
    };
    let log_has = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(needle)
    };

    // Broken: refused, named, and the old config keeps promoting.
    std::fs::write(
        &work.config,
        good.replace("constraint = \"^1\"", "constraint = \"^1.x.y\""),
    )
    .unwrap();
    hup();
    while !log_has("reload refused") {
        assert!(Instant::now() < deadline, "no reload attempt logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        log_has("apps[0].constraint: invalid range"),
        "the error names the key"
    );
    // TagwatchConfigReloadFailed counts these.
    assert_eq!((reloads("failure"), reloads("success")), (1.0, 0.0));
    moto.seed("app", &[("1.2.0", 3)]);
    remote.wait_for_commits(
        3,
        deadline,
        "the daemon stopped promoting after a bad reload",
    );

    // Good, with a second app: promoted after the reload.
    let with_new = format!(
        "{good}\n[[apps]]\nname = \"new\"\nrepository = \"new\"\n\n[[apps.targets]]\nenv = \"dev\"\nfile = \"new.yaml\"\nkey = \"image.tag\"\n"
    );
    std::fs::write(&work.config, with_new).unwrap();
    hup();
    remote.wait_for_commits(4, deadline, "the reloaded app was not promoted");
    assert!(
        remote
            .subjects()
            .contains(&"new: dev 2.0.0 -> 2.1.0".to_string())
    );
    assert!(log_has("configuration reloaded"));
    assert_eq!((reloads("failure"), reloads("success")), (1.0, 1.0));
    assert!(daemon.stop().success());
}

/// Issue 13 item 18: the SQS client had none of the ECR client's timeouts,
/// so a long poll whose answer never came held event handling for ever.
/// Here "SQS" is a bare TCP listener that accepts and never answers: the
/// receive ends at the shared 30 s attempt timeout, the loop logs it and
/// polls again 5 s later, cycles go on meanwhile, and SIGTERM during the
/// next stalled poll stops the daemon at once.
#[test]
fn a_stalled_sqs_long_poll_times_out_and_the_loop_carries_on() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "values.yaml")],
    );
    // The silent peer: every connection is accepted and kept, unanswered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sqs = format!("http://{}", silent.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let (accepted, held) = (Arc::clone(&accepted), Arc::clone(&held));
        std::thread::spawn(move || {
            for stream in silent.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.lock().unwrap().push(stream);
            }
        });
    }
    work.edit_config("interval = \"2m\"", "interval = \"1s\"");
    work.edit_config(
        "[git]",
        &format!("[aws.events]\nsqs_queue_url = \"{sqs}/123456789012/tagwatch-events\"\n\n[git]"),
    );
    let log = work.dir.path().join("daemon.log");
    let started = Instant::now();
    let daemon = Daemon::start_with_env(&work.config, &log, &[("AWS_ENDPOINT_URL_SQS", &sqs)]);
    let timed_out = "cannot receive from the event queue; retrying in 5 s";
    while daemon.count(timed_out) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a stalled long poll never ended (accepted {} connections):\n{}",
            accepted.load(Ordering::SeqCst),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    let text = daemon.log_text();
    let line = text
        .lines()
        .find(|l| l.contains(timed_out))
        .unwrap()
        .to_string();
    assert!(line.contains("timed out"), "{line}");
    // The attempt timeout (30 s), once: not the SDK's three attempts.
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(45),
        "the poll ended after {took:?}"
    );
    // It carries on: another poll 5 s later, and cycles went on meanwhile.
    let polls = accepted.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(15);
    while accepted.load(Ordering::SeqCst) <= polls {
        assert!(Instant::now() < deadline, "no poll after the timeout");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon.count("cycle finished") >= 10,
        "cycles were held up: {}",
        daemon.count("cycle finished")
    );
    let stopping = Instant::now();
    assert!(daemon.stop().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "took {:?} to stop during a stalled poll",
        stopping.elapsed()
    );
}

/// `tagwatch_events_total` by value, as TagwatchInvalidEvents reads it:
/// two messages that are not ECR push events (not JSON; another service's
/// event) count as invalid once each, a delete as ignored, a push as
/// accepted. The queue's visibility timeout (60 s) outlasts the test, so
/// each message is received exactly once.
#[test]
fn event_outcomes_are_counted_by_value() {
    let moto = Moto::start();
    moto.seed("app", &[("1.0.0", 1)]);
    let queue = moto.boto3(
        "print(client('sqs').create_queue(QueueName='tagwatch-events', Attributes={'VisibilityTimeout': '60'})['QueueUrl'])",
    );
    let remote = GitRemote::new(&[("values.yaml", "image:\n  tag: 1.0.0\n")]);
    let work = Workdir::new(
        &moto.endpoint,
        &remote.file_url(),
        &[("app", "app", "^1", "values.yaml")],
    );
    let port = free_port();
    work.edit_config("interval = \"2m\"", "interval = \"1h\"");
    work.edit_config(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    work.edit_config(
        "[git]",
        &format!("[aws.events]\nsqs_queue_url = \"{queue}\"\n\n[git]"),
    );
    let log = work.dir.path().join("daemon.log");
    let daemon = Daemon::start_with_env(
        &work.config,
        &log,
        &[("AWS_ENDPOINT_URL_SQS", &moto.endpoint)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.count("listening for ECR push events") == 0 || daemon.count("cycle finished") == 0
    {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    moto.seed("app", &[("1.1.0", 2)]);
    let s3 = EVENT.replace("aws.ecr", "aws.s3");
    let delete = EVENT.replace("PUSH", "DELETE");
    moto.boto3(&format!(
        "q = client('sqs')\n\
         for body in ['{{not json', {s3:?}, {delete:?}, {EVENT:?}]:\n    q.send_message(QueueUrl={queue:?}, MessageBody=body)\n"
    ));
    remote.wait_for_commits(2, deadline, "no promotion after the event");
    let events = |outcome: &str| {
        metric(
            port,
            "tagwatch_events_total",
            &[("source", "sqs"), ("outcome", outcome)],
        )
    };
    let wanted = [("invalid", 2.0), ("ignored", 1.0), ("accepted", 1.0)];
    // The push may have been read in a later batch than the rest.
    while wanted.iter().any(|(o, n)| events(o) != *n) {
        assert!(
            Instant::now() < deadline,
            "events counted {:?}, wanted {wanted:?}",
            wanted.map(|(o, _)| (o, events(o)))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.stop().success());
}
