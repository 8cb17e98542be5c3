//! The clock and randomness of the real world, behind the domain's ports.

use domain::ports::{Clock, RandomSource};
use domain::Timestamp;
use rand::RngCore;
use time::OffsetDateTime;

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_offset_datetime(OffsetDateTime::now_utc())
    }
}

/// The operating system's CSPRNG.
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buffer: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(buffer);
    }
}
