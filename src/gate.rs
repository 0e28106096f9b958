//! Promotion gates on an image, as plain data and pure rules: the scan
//! findings and signatures a registry reports ([`ScanFindings`],
//! [`Referrers`]), the settings a target asks for ([`Gates`]), and the
//! verdict of one gate on one image ([`scan_verdict`], [`signature_verdict`]).
//!
//! A leaf below config, registry and the cycle: config validates the
//! settings into these types, the registry fills the facts, `cycle::plan`
//! applies the rules. Nothing here fetches anything.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};

/// A finding's severity, ordered from least to most severe (ECR basic
/// scanning and Amazon Inspector share these names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The severity named exactly as ECR spells it; `None` otherwise.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an image's scan is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    Complete,
    InProgress,
    Failed,
    UnsupportedImage,
    /// No scan of this image exists (ECR's `ScanNotFoundException`), or a
    /// status this version does not know (`PENDING`, `FINDINGS_UNAVAILABLE`).
    Missing,
}

impl ScanStatus {
    /// From ECR's `imageScanStatus.status`.
    pub fn parse(s: &str) -> ScanStatus {
        match s {
            "COMPLETE" | "ACTIVE" => ScanStatus::Complete,
            "IN_PROGRESS" | "PENDING" | "SCAN_ELIGIBILITY_EXPIRED_PENDING" => {
                ScanStatus::InProgress
            }
            "FAILED" => ScanStatus::Failed,
            "UNSUPPORTED_IMAGE" => ScanStatus::UnsupportedImage,
            _ => ScanStatus::Missing,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ScanStatus::Complete => "COMPLETE",
            ScanStatus::InProgress => "IN_PROGRESS",
            ScanStatus::Failed => "FAILED",
            ScanStatus::UnsupportedImage => "UNSUPPORTED_IMAGE",
            ScanStatus::Missing => "missing",
        }
    }
}

/// One image's scan, as the registry reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanFindings {
    pub status: ScanStatus,
    /// Findings per severity (all pages counted).
    pub counts: BTreeMap<Severity, u32>,
    /// Findings without a severity (`UNDEFINED`, Inspector's `UNTRIAGED`).
    pub undefined: u32,
    /// Amazon Inspector (enhanced) rather than basic scanning.
    pub enhanced: bool,
}

impl ScanFindings {
    /// A scan that has not finished, or never started.
    pub fn with_status(status: ScanStatus) -> ScanFindings {
        ScanFindings {
            status,
            counts: BTreeMap::new(),
            undefined: 0,
            enhanced: false,
        }
    }

    /// Whether the result can only change on a rescan (so it may be kept
    /// for the life of the process).
    pub fn is_final(&self) -> bool {
        matches!(
            self.status,
            ScanStatus::Complete | ScanStatus::Failed | ScanStatus::UnsupportedImage
        )
    }
}

/// The OCI artifact types that refer to an image (its referrers).
pub type Referrers = Vec<String>;

/// cosign v3 signs into an OCI referrer of this artifact type.
pub const COSIGN_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// notation (AWS Signer) signatures are OCI referrers of this artifact type.
pub const NOTATION_SIGNATURE: &str = "application/vnd.cncf.notary.signature";

/// `scan_pending`: what a scan that is not COMPLETE means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Not a candidate yet: a newer image never overtakes its own scan.
    Wait,
    /// A candidate anyway.
    Allow,
}

/// The scan gate's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanGate {
    /// No finding above this severity.
    pub max: Severity,
    /// What an `UNDEFINED` finding counts as.
    pub undefined_as: Severity,
    pub pending: Pending,
}

/// `require_signature`: which signature an image must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureKind {
    Cosign,
    Notation,
    Any,
}

impl SignatureKind {
    pub fn parse(s: &str) -> Option<SignatureKind> {
        match s {
            "cosign" => Some(SignatureKind::Cosign),
            "notation" => Some(SignatureKind::Notation),
            "any" => Some(SignatureKind::Any),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::Cosign => "cosign",
            SignatureKind::Notation => "notation",
            SignatureKind::Any => "any",
        }
    }
}

/// The gates a target's candidates must pass (app keys, each overridden
/// by the target's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    pub scan: Option<ScanGate>,
    pub signature: Option<SignatureKind>,
    /// `cosign_public_key_file`: a cosign signature counts only when it
    /// verifies against this key (with `require_signature = "cosign"`).
    pub cosign_key: Option<Arc<CosignKey>>,
}

/// A cosign public key (ECDSA P-256, PEM), parsed when the config loads.
#[derive(Clone)]
pub struct CosignKey {
    pub path: PathBuf,
    key: PKey<Public>,
}

impl fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignKey({})", self.path.display())
    }
}

impl PartialEq for CosignKey {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for CosignKey {}

/// Why a `cosign_public_key_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a PEM public key (as `cosign generate-key-pair` writes cosign.pub)")]
    NotAKey { path: PathBuf },
    #[error("{path} is not an ECDSA P-256 key, which cosign signs with")]
    NotP256 { path: PathBuf },
}

impl CosignKey {
    /// Reads and parses the key at `path`.
    pub fn load(path: &Path) -> Result<CosignKey, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let key = PKey::public_key_from_pem(&pem).map_err(|_| KeyError::NotAKey {
            path: path.to_path_buf(),
        })?;
        let p256 = key.ec_key().ok().and_then(|ec| ec.group().curve_name())
            == Some(openssl::nid::Nid::X9_62_PRIME256V1);
        if !p256 {
            return Err(KeyError::NotP256 {
                path: path.to_path_buf(),
            });
        }
        Ok(CosignKey {
            path: path.to_path_buf(),
            key,
        })
    }

    /// Whether `signature` (base64 DER, as cosign's layer annotation holds
    /// it) signs `payload` with this key.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        use base64::Engine as _;
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim())
        else {
            return false;
        };
        openssl::sign::Verifier::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut v| {
                v.update(payload)?;
                v.verify(&signature)
            })
            .unwrap_or(false)
    }
}

/// One signature of cosign's legacy scheme: a layer of the `.sig` image,
/// its payload (the simple-signing JSON) and the signature over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignSignature {
    pub payload: Vec<u8>,
    /// Base64, from the layer's `dev.cosignproject.cosign/signature`.
    pub signature: String,
}

/// The signature gate with a key: some signature must verify against the
/// key *and* its payload must name `digest` (`critical.image.
/// docker-manifest-digest`), so a signature copied from another image does
/// not count.
pub fn cosign_verdict(key: &CosignKey, digest: &str, signatures: &[CosignSignature]) -> Verdict {
    let names_digest = |payload: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .is_some_and(|v| v["critical"]["image"]["docker-manifest-digest"] == digest)
    };
    let verified = signatures
        .iter()
        .any(|s| names_digest(&s.payload) && key.verifies(&s.payload, &s.signature));
    if verified {
        Verdict::Pass(format!(
            "signed (cosign, verified with {})",
            key.path.display()
        ))
    } else {
        Verdict::Fail(format!(
            "no cosign signature verifies with {}",
            key.path.display()
        ))
    }
}

impl Gates {
    pub fn any(&self) -> bool {
        self.scan.is_some() || self.signature.is_some()
    }
}

/// `analysis`: a PromQL query that must return a sample before a target
/// takes its source env's version, checked when the config loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// As written, with its `{{app}}`, `{{env}}`, `{{tag}}` placeholders.
    pub query: String,
}

/// The placeholders an `analysis` query may hold.
pub const PLACEHOLDERS: [&str; 3] = ["app", "env", "tag"];

/// Why an `analysis` query cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error("must not be empty")]
    Empty,
    #[error(
        "unknown placeholder {{{{{0}}}}} (the placeholders are {{{{app}}}}, {{{{env}}}} and {{{{tag}}}})"
    )]
    UnknownPlaceholder(String),
    #[error("`{{{{` without a closing `}}}}`")]
    Unclosed,
}

/// One sample of an instant query's vector: its labels and its value, as
/// Prometheus prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// `{job="api"}`, or `{}`.
    pub metric: String,
    pub value: String,
}

impl Analysis {
    /// Checks every `{{…}}` names a placeholder tagwatch fills.
    pub fn parse(query: &str) -> Result<Analysis, AnalysisError> {
        if query.trim().is_empty() {
            return Err(AnalysisError::Empty);
        }
        let mut rest = query;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(AnalysisError::Unclosed)?;
            let name = after[..close].trim();
            if !PLACEHOLDERS.contains(&name) {
                return Err(AnalysisError::UnknownPlaceholder(name.to_string()));
            }
            rest = &after[close + 2..];
        }
        Ok(Analysis {
            query: query.to_string(),
        })
    }

    /// The query with its placeholders filled, each value escaped as a
    /// PromQL string's contents, so a value can never end the string it
    /// sits in and change the query (an OCI tag cannot hold a quote, but
    /// an app or env name is only as careful as the config).
    pub fn render(&self, app: &str, env: &str, tag: &str) -> String {
        let mut out = String::with_capacity(self.query.len());
        let mut rest = self.query.as_str();
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            // `parse` checked every placeholder is closed and known.
            let close = after.find("}}").unwrap_or(after.len());
            let value = match after[..close].trim() {
                "app" => app,
                "env" => env,
                _ => tag,
            };
            out.push_str(&promql_escape(value));
            rest = after.get(close + 2..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

/// `s` as the inside of a PromQL string literal (double- or single-quoted).
pub fn promql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// The analysis gate on a query's answer: a sample passes (PromQL's
/// comparisons drop the series that fail them), no sample fails.
pub fn analysis_verdict(query: &str, samples: &[Sample]) -> Verdict {
    match samples.first() {
        Some(first) => {
            let more = match samples.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            Verdict::Pass(format!(
                "analysis `{query}` = {}{}{more}",
                first.value,
                if first.metric == "{}" {
                    String::new()
                } else {
                    format!(" {}", first.metric)
                }
            ))
        }
        None => Verdict::Fail(format!("analysis `{query}` returned no sample")),
    }
}

/// Which gate; a fixed set for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Gate {
    Scan,
    Signature,
    /// `analysis`: a PromQL query over the source env, at the end of the soak.
    Analysis,
    /// The source env's Argo CD Application: Synced and Healthy at the
    /// promotion, for the soak.
    Argocd,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Scan => "scan",
            Gate::Signature => "signature",
            Gate::Analysis => "analysis",
            Gate::Argocd => "argocd",
        }
    }
}

/// A gate's verdict on one image; a fixed set of outcomes for metrics,
/// each with the sentence a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// Not decided yet (a scan in progress); the image may pass later.
    Pending(String),
    /// The registry could not say.
    Error(String),
}

impl Verdict {
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Pending(_) => "pending",
            Verdict::Error(_) => "error",
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Verdict::Pass(t) | Verdict::Fail(t) | Verdict::Pending(t) | Verdict::Error(t) => t,
        }
    }

    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass(_))
    }
}

/// The scan gate on one image's findings.
pub fn scan_verdict(gate: &ScanGate, scan: &ScanFindings) -> Verdict {
    let allow = gate.pending == Pending::Allow;
    let not_complete = |what: &str| {
        if allow {
            Verdict::Pass(format!("{what} (scan_pending = \"allow\")"))
        } else {
            Verdict::Pending(what.to_string())
        }
    };
    match scan.status {
        ScanStatus::Complete => {}
        ScanStatus::InProgress | ScanStatus::Missing => return not_complete("scan pending"),
        ScanStatus::Failed => {
            return if allow {
                Verdict::Pass("scan FAILED (scan_pending = \"allow\")".into())
            } else {
                Verdict::Fail("scan FAILED".into())
            };
        }
        ScanStatus::UnsupportedImage => {
            return if allow {
                Verdict::Pass("scan UNSUPPORTED_IMAGE (scan_pending = \"allow\")".into())
            } else {
                Verdict::Fail("scan UNSUPPORTED_IMAGE".into())
            };
        }
    }
    let mut above: BTreeMap<Severity, u32> = scan
        .counts
        .iter()
        .filter(|(s, n)| **s > gate.max && **n > 0)
        .map(|(s, n)| (*s, *n))
        .collect();
    if scan.undefined > 0 && gate.undefined_as > gate.max {
        *above.entry(gate.undefined_as).or_default() += scan.undefined;
    }
    let kind = if scan.enhanced { "Inspector" } else { "basic" };
    if above.is_empty() {
        let total: u32 = scan.counts.values().sum::<u32>() + scan.undefined;
        return Verdict::Pass(format!(
            "scan ({kind}): {total} findings, none above {}",
            gate.max
        ));
    }
    let list: Vec<String> = above
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let noun = if above.values().sum::<u32>() == 1 {
        "finding"
    } else {
        "findings"
    };
    Verdict::Fail(format!(
        "{} {noun} above {} ({kind} scan)",
        list.join(", "),
        gate.max
    ))
}

/// The signature gate on one image: `legacy_tag` is whether the listing
/// holds cosign's `sha256-<hex>.sig` tag for it; `referrers` the artifact
/// types that refer to it (`None` when they were not needed: a legacy tag
/// satisfies cosign on its own).
pub fn signature_verdict(
    kind: SignatureKind,
    legacy_tag: bool,
    referrers: Option<&Referrers>,
) -> Option<Verdict> {
    let has = |t: &str| referrers.is_some_and(|r| r.iter().any(|a| a == t));
    let cosign = legacy_tag || has(COSIGN_BUNDLE);
    let notation = has(NOTATION_SIGNATURE);
    let found = match kind {
        SignatureKind::Cosign if cosign => Some("cosign"),
        SignatureKind::Notation if notation => Some("notation"),
        SignatureKind::Any if cosign => Some("cosign"),
        SignatureKind::Any if notation => Some("notation"),
        _ => None,
    };
    match (found, referrers) {
        (Some(found), _) => Some(Verdict::Pass(format!("signed ({found})"))),
        // Not found in the listing alone: the referrers must be asked.
        (None, None) => None,
        (None, Some(_)) => Some(Verdict::Fail(match kind {
            SignatureKind::Any => "not signed".into(),
            kind => format!("not signed with {}", kind.as_str()),
        })),
    }
}

/// cosign's legacy signature tag for `digest`: `sha256:ab…` → `sha256-ab….sig`.
pub fn cosign_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(counts: &[(Severity, u32)], undefined: u32) -> ScanFindings {
        ScanFindings {
            status: ScanStatus::Complete,
            counts: counts.iter().copied().collect(),
            undefined,
            enhanced: false,
        }
    }

    const HIGH: ScanGate = ScanGate {
        max: Severity::High,
        undefined_as: Severity::Low,
        pending: Pending::Wait,
    };

    #[test]
    fn scan_rules() {
        let v = scan_verdict(&HIGH, &complete(&[(Severity::Critical, 2)], 0));
        assert_eq!(
            v,
            Verdict::Fail("2 CRITICAL findings above HIGH (basic scan)".into())
        );
        assert!(scan_verdict(&HIGH, &complete(&[(Severity::High, 9)], 3)).passes());
        let strict = ScanGate {
            undefined_as: Severity::Critical,
            ..HIGH
        };
        assert_eq!(
            scan_verdict(&strict, &complete(&[], 1)).outcome(),
            "fail",
            "UNDEFINED counts as scan_undefined_as"
        );
        let pending = ScanFindings::with_status(ScanStatus::InProgress);
        assert_eq!(scan_verdict(&HIGH, &pending).outcome(), "pending");
        let allow = ScanGate {
            pending: Pending::Allow,
            ..HIGH
        };
        assert!(scan_verdict(&allow, &pending).passes());
        let failed = ScanFindings::with_status(ScanStatus::Failed);
        assert_eq!(scan_verdict(&HIGH, &failed).outcome(), "fail");
    }

    /// A key as `cosign generate-key-pair` makes one, and a signature as
    /// `cosign sign --key` makes it.
    fn keypair(dir: &Path, name: &str) -> (CosignKey, PKey<openssl::pkey::Private>) {
        let group =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let private = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, private.public_key_to_pem().unwrap()).unwrap();
        (CosignKey::load(&path).unwrap(), private)
    }

    fn sign(private: &PKey<openssl::pkey::Private>, digest: &str) -> CosignSignature {
        use base64::Engine as _;
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), private).unwrap();
        signer.update(&payload).unwrap();
        let signature =
            base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
        CosignSignature { payload, signature }
    }

    #[test]
    fn cosign_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (trusted, trusted_private) = keypair(dir.path(), "trusted.pub");
        let (_, other_private) = keypair(dir.path(), "other.pub");
        let good = sign(&trusted_private, "sha256:ab");
        assert!(cosign_verdict(&trusted, "sha256:ab", std::slice::from_ref(&good)).passes());
        assert_eq!(
            cosign_verdict(&trusted, "sha256:ab", &[sign(&other_private, "sha256:ab")]).outcome(),
            "fail",
            "another key's signature"
        );
        assert_eq!(
            cosign_verdict(&trusted, "sha256:cd", std::slice::from_ref(&good)).outcome(),
            "fail",
            "a signature copied from another image"
        );
        let mut tampered = good;
        tampered.payload.push(b' ');
        assert_eq!(
            cosign_verdict(&trusted, "sha256:ab", &[tampered]).outcome(),
            "fail"
        );
        std::fs::write(dir.path().join("junk.pub"), "not a key").unwrap();
        assert!(matches!(
            CosignKey::load(&dir.path().join("junk.pub")),
            Err(KeyError::NotAKey { .. })
        ));
    }

    #[test]
    fn analysis_placeholders_are_checked_and_escaped() {
        let a = Analysis::parse(r#"x{app="{{app}}",env="{{ env }}",tag="{{tag}}"}"#).unwrap();
        assert_eq!(
            a.render("web", "d\"e\\v", "1.0"),
            r#"x{app="web",env="d\"e\\v",tag="1.0"}"#
        );
        assert_eq!(
            Analysis::parse("x{{version}}"),
            Err(AnalysisError::UnknownPlaceholder("version".into()))
        );
        assert_eq!(Analysis::parse("x{{app"), Err(AnalysisError::Unclosed));
        assert_eq!(Analysis::parse("  "), Err(AnalysisError::Empty));
        assert_eq!(analysis_verdict("q", &[]).outcome(), "fail");
    }

    #[test]
    fn signature_rules() {
        assert!(
            signature_verdict(SignatureKind::Cosign, true, None)
                .unwrap()
                .passes()
        );
        assert_eq!(signature_verdict(SignatureKind::Cosign, false, None), None);
        let notary = vec![NOTATION_SIGNATURE.to_string()];
        assert_eq!(
            signature_verdict(SignatureKind::Cosign, false, Some(&notary))
                .unwrap()
                .outcome(),
            "fail"
        );
        assert!(
            signature_verdict(SignatureKind::Any, false, Some(&notary))
                .unwrap()
                .passes()
        );
        assert_eq!(cosign_tag("sha256:ab"), "sha256-ab.sig");
    }
}
