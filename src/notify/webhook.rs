//! The webhook's body and signature. Pure: one JSON object per cycle,
//! `{"source":"tagwatch","events":[…]}`, and `sha256=<hex>` of its exact
//! bytes, HMAC-SHA256 keyed by `secret_file`, for `X-Tagwatch-Signature`.

use super::event::Event;

/// The header a receiver checks.
pub const SIGNATURE_HEADER: &str = "x-tagwatch-signature";

/// The body of one cycle's POST.
pub fn body(events: &[&Event]) -> Vec<u8> {
    let value = serde_json::json!({ "source": "tagwatch", "events": events });
    value.to_string().into_bytes()
}

/// `sha256=` and the lower-case hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> Result<String, openssl::error::ErrorStack> {
    use openssl::{hash::MessageDigest, pkey::PKey, sign::Signer};
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(body)?;
    let mac = signer.sign_to_vec()?;
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256={hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe".
        let sig = signature(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
