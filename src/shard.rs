//! Splitting the cameras over several instances: `--shard i/n` keeps the cameras whose id hashes
//! to `i` modulo `n`. The hash is SHA-256 of the id, so the assignment is the same on every
//! machine, in every build, and does not move a camera when others are added or removed.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// This instance's part of the cameras.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index of this instance.
    pub index: u32,
    /// Number of instances.
    pub count: u32,
}

impl Shard {
    /// One instance with every camera.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The shard a camera id belongs to, of `count`.
    pub fn of(id: &str, count: u32) -> u32 {
        let digest = Sha256::digest(id.as_bytes());
        let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        (first % u64::from(count.max(1))) as u32
    }

    /// Whether this instance watches the camera `id`.
    pub fn owns(&self, id: &str) -> bool {
        Shard::of(id, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a `--shard` value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--shard {given:?}: {why} (expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3)")]
pub struct ShardError {
    given: String,
    why: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let err = |why| ShardError {
            given: s.to_owned(),
            why,
        };
        let (i, n) = s.split_once('/').ok_or_else(|| err("no '/'"))?;
        let index: u32 = i.trim().parse().map_err(|_| err("INDEX is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| err("COUNT is not a number"))?;
        if count == 0 {
            return Err(err("COUNT must be at least 1"));
        }
        if index >= count {
            return Err(err("INDEX must be less than COUNT"));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_camera_belongs_to_exactly_one_shard_and_shards_are_balanced() {
        let ids: Vec<String> = (1..=77).map(|i| format!("hotspot-{i:03}")).collect();
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut sizes = [0; 3];
        for id in &ids {
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0].index as usize] += 1;
        }
        // 77 / 3 = 25.7; a hash spreads them within a few of that.
        for n in sizes {
            assert!((18..=34).contains(&n), "{sizes:?}");
        }
    }

    #[test]
    fn the_assignment_is_stable_across_builds() {
        // SHA-256, not the std hasher: these must never change, or cameras would move between
        // instances on an upgrade.
        assert_eq!(Shard::of("hotspot-001", 3), Shard::of("hotspot-001", 3));
        let pinned: Vec<u32> = ["a", "b", "hotspot-001", "cam-77"]
            .iter()
            .map(|id| Shard::of(id, 5))
            .collect();
        assert_eq!(pinned, PINNED);
    }

    const PINNED: [u32; 4] = [0, 1, 1, 3];

    #[test]
    fn bad_values_say_what_is_expected() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("INDEX/COUNT") && e.contains(bad), "{e}");
        }
        assert!(Shard::ALL.owns("anything"));
    }
}
