//! The organization lifecycle (API.md §4.2) as a pure function of (state, action).
//!
//! ```text
//!  create ──► active ──suspend──► suspended
//!               ▲  └───────◄──resume──┘
//!            archive           archive
//!               ▼                 ▼
//!            archived (terminal)
//! ```

use super::OrganizationStatus;
use crate::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Suspend,
    Resume,
    Archive,
}

/// What an action does to a state: nothing (already there), or a move to a new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    NoOp,
    To(OrganizationStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the organization is archived, a terminal state")]
    Archived,
}

/// Decides what `action` does to an organization in `current` state at instant `now`.
pub fn decide(
    current: OrganizationStatus,
    action: LifecycleAction,
    now: Timestamp,
) -> Result<Transition, LifecycleError> {
    use LifecycleAction::*;
    use OrganizationStatus::*;
    match (current, action) {
        (Archived { .. }, Archive) => Ok(Transition::NoOp),
        (Archived { .. }, Suspend | Resume) => Err(LifecycleError::Archived),
        (Active, Suspend) => Ok(Transition::To(Suspended { since: now })),
        (Suspended { .. }, Suspend) => Ok(Transition::NoOp),
        (Suspended { .. }, Resume) => Ok(Transition::To(Active)),
        (Active, Resume) => Ok(Transition::NoOp),
        (Active | Suspended { .. }, Archive) => Ok(Transition::To(Archived { at: now })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleAction::*;
    use OrganizationStatus::*;

    fn t(micros: i64) -> Timestamp {
        Timestamp::from_unix_micros(micros).unwrap()
    }

    /// Every (state, action) pair, with its expected outcome.
    #[test]
    fn every_state_and_action() {
        let then = t(1_000);
        let now = t(2_000);
        let cases = [
            (
                Active,
                Suspend,
                Ok(Transition::To(Suspended { since: now })),
            ),
            (Active, Resume, Ok(Transition::NoOp)),
            (Active, Archive, Ok(Transition::To(Archived { at: now }))),
            (Suspended { since: then }, Suspend, Ok(Transition::NoOp)),
            (
                Suspended { since: then },
                Resume,
                Ok(Transition::To(Active)),
            ),
            (
                Suspended { since: then },
                Archive,
                Ok(Transition::To(Archived { at: now })),
            ),
            (
                Archived { at: then },
                Suspend,
                Err(LifecycleError::Archived),
            ),
            (Archived { at: then }, Resume, Err(LifecycleError::Archived)),
            (Archived { at: then }, Archive, Ok(Transition::NoOp)),
        ];
        for (state, action, expected) in cases {
            assert_eq!(
                decide(state, action, now),
                expected,
                "{state:?} × {action:?}"
            );
        }
    }
}
