//! `model.cpu_budget`: how much CPU the service may take.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Share of the machine's CPUs that `auto` gives the service.
pub const AUTO_SHARE: f64 = 0.8;

/// The most CPU the service (every thread but the API's, which run niced) may use on average,
/// in cores. The detector is the only stage that can wait, so it is what is slowed to keep it.
///
/// Written in the service file as `"auto"`, `"off"` or a number of cores (`1.5`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum CpuBudget {
    /// [`AUTO_SHARE`] of the CPUs this process may run on (1.6 of 2): the rest is left to the
    /// machine (the system, an RTSP relay, a shell to repair things).
    #[default]
    Auto,
    /// No budget: the detector takes every core the decoders leave.
    Off,
    /// At most this many cores.
    Cores(f64),
}

impl CpuBudget {
    /// The budget in cores on a machine where this process may use `cpus` CPUs; `None` = no
    /// budget.
    pub fn cores(self, cpus: usize) -> Option<f64> {
        match self {
            CpuBudget::Auto => Some(AUTO_SHARE * cpus.max(1) as f64),
            CpuBudget::Off => None,
            CpuBudget::Cores(c) => Some(c),
        }
    }

    /// The budget in cores on this machine (`std::thread::available_parallelism`, which
    /// honours CPU affinity and cgroup quotas); `None` = no budget.
    pub fn cores_here(self) -> Option<f64> {
        self.cores(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

impl Serialize for CpuBudget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            CpuBudget::Auto => s.serialize_str("auto"),
            CpuBudget::Off => s.serialize_str("off"),
            CpuBudget::Cores(c) => s.serialize_f64(c),
        }
    }
}

impl<'de> Deserialize<'de> for CpuBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Word(String),
            Cores(f64),
            WholeCores(i64),
        }
        match Written::deserialize(d).map_err(|_| {
            serde::de::Error::custom(r#"expected "auto", "off" or a number of cores such as 1.5"#)
        })? {
            Written::Word(w) if w == "auto" => Ok(CpuBudget::Auto),
            Written::Word(w) if w == "off" => Ok(CpuBudget::Off),
            Written::Word(w) => Err(serde::de::Error::custom(format!(
                r#"unknown CPU budget {w:?}: expected "auto", "off" or a number of cores such as 1.5"#
            ))),
            Written::Cores(c) => Ok(CpuBudget::Cores(c)),
            Written::WholeCores(c) => Ok(CpuBudget::Cores(c as f64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Holder {
        cpu_budget: CpuBudget,
    }

    fn parse(text: &str) -> Result<CpuBudget, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.cpu_budget)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn words_and_numbers_are_read_and_written_back() {
        assert_eq!(parse(r#"cpu_budget = "auto""#), Ok(CpuBudget::Auto));
        assert_eq!(parse(r#"cpu_budget = "off""#), Ok(CpuBudget::Off));
        assert_eq!(parse("cpu_budget = 1.5"), Ok(CpuBudget::Cores(1.5)));
        assert_eq!(parse("cpu_budget = 2"), Ok(CpuBudget::Cores(2.0)));
        for b in [CpuBudget::Auto, CpuBudget::Off, CpuBudget::Cores(1.25)] {
            let text = toml::to_string(&Holder { cpu_budget: b }).unwrap();
            assert_eq!(parse(&text), Ok(b), "{text}");
        }
        let e = parse(r#"cpu_budget = "half""#).unwrap_err();
        assert!(e.contains(r#"unknown CPU budget "half""#), "{e}");
        let e = parse("cpu_budget = true").unwrap_err();
        assert!(e.contains("a number of cores"), "{e}");
    }

    #[test]
    fn auto_is_a_share_of_the_cpus_and_off_is_none() {
        assert_eq!(CpuBudget::Auto.cores(2), Some(1.6));
        assert_eq!(CpuBudget::Off.cores(2), None);
        assert_eq!(CpuBudget::Cores(0.5).cores(64), Some(0.5));
        assert!(CpuBudget::Auto.cores_here().is_some_and(|c| c > 0.0));
    }
}
