//! A rollback as data: what caused it, and the order to set a target back
//! to a tag. A leaf below `config` (a target can carry an order: `tagwatch
//! rollback` narrows the configuration to the one target, as `promote`
//! does) and `cycle` (plan turns an order, or a failed `verify`, into a
//! change; write and propose put its trailers on the commit).

use crate::trailers::one_line;

/// The trailer naming the tag a rollback commit rolled back.
pub const ROLLBACK_OF: &str = "Tagwatch-Rollback-Of";
/// The trailer naming why (a rollback's or a hold's reason).
pub const REASON: &str = "Tagwatch-Reason";
/// The trailer naming what caused a rollback (`command`, `verify`, `argocd`).
pub const CAUSE: &str = "Tagwatch-Rollback-Cause";

/// What caused a rollback or a denial; a fixed label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A person's commit moved the value below what tagwatch promoted.
    Person,
    /// `tagwatch rollback`.
    Command,
    /// The target's `verify` query came back empty.
    Verify,
    /// The target's Argo CD Application stayed Degraded.
    Argocd,
}

impl Cause {
    pub const ALL: [Cause; 4] = [Cause::Person, Cause::Command, Cause::Verify, Cause::Argocd];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Person => "person",
            Cause::Command => "command",
            Cause::Verify => "verify",
            Cause::Argocd => "argocd",
        }
    }

    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Set a target back to `to`, denying `of`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The tag (or digest, for the digest strategy) to set the target to.
    pub to: String,
    /// The tag rolled back: what the target holds now.
    pub of: String,
    pub cause: Cause,
    pub reason: String,
}

impl Order {
    /// The trailers a rollback commit carries besides a promotion's, each
    /// on one line: the lines to append to [`crate::trailers::Promotion::message`].
    pub fn trailers(&self) -> String {
        format!(
            "{ROLLBACK_OF}: {}\n{CAUSE}: {}\n{REASON}: {}\n",
            one_line(&self.of),
            self.cause.as_str(),
            one_line(&self.reason)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_cannot_add_a_trailer() {
        let order = Order {
            to: "1.4.4".into(),
            of: "1.4.5".into(),
            cause: Cause::Command,
            reason: "bad\nTagwatch-App: other".into(),
        };
        assert_eq!(
            order.trailers(),
            "Tagwatch-Rollback-Of: 1.4.5\nTagwatch-Rollback-Cause: command\nTagwatch-Reason: bad\\u{a}Tagwatch-App: other\n"
        );
    }
}
