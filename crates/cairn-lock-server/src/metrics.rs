//! Prometheus metrics of the lock service, in the text exposition format: requests by
//! endpoint and outcome, slots freed by leases, and per group the slots and holders (read
//! from the store at each scrape).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::admin::GroupReport;

#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// (endpoint, outcome) → requests.
    requests: BTreeMap<(String, String), u64>,
    /// group → slots freed because a lease ran out.
    expired: BTreeMap<String, u64>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> T {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A FleetLock request answered: `outcome` is `ok` or the error kind.
    pub fn request(&self, endpoint: &str, outcome: &str) {
        self.with(|c| {
            *c.requests
                .entry((endpoint.to_string(), outcome.to_string()))
                .or_default() += 1
        });
    }

    pub fn expired(&self, group: &str) {
        self.with(|c| *c.expired.entry(group.to_string()).or_default() += 1);
    }

    pub fn render(&self, groups: &[GroupReport]) -> String {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
            cairn_http::metric_family(&mut out, name, kind, help, samples)
        };
        family(
            "cairn_lock_requests_total",
            "counter",
            "FleetLock requests by endpoint and outcome (ok, or the error kind).",
            c.requests
                .iter()
                .map(|((endpoint, outcome), n)| {
                    format!("cairn_lock_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {n}")
                })
                .collect(),
        );
        family(
            "cairn_lock_lease_expired_total",
            "counter",
            "Reboot slots freed because the holder's lease ran out, by group.",
            c.expired
                .iter()
                .map(|(group, n)| {
                    format!("cairn_lock_lease_expired_total{{group=\"{group}\"}} {n}")
                })
                .collect(),
        );
        family(
            "cairn_lock_slots",
            "gauge",
            "Reboot slots in force, by group.",
            groups
                .iter()
                .map(|g| format!("cairn_lock_slots{{group=\"{}\"}} {}", g.group, g.slots))
                .collect(),
        );
        family(
            "cairn_lock_holders",
            "gauge",
            "Reboot slots taken, by group.",
            groups
                .iter()
                .map(|g| {
                    format!(
                        "cairn_lock_holders{{group=\"{}\"}} {}",
                        g.group,
                        g.holders.len()
                    )
                })
                .collect(),
        );
        family(
            "cairn_lock_store_up",
            "gauge",
            "1 when the group could be read from the store at this scrape.",
            groups
                .iter()
                .map(|g| {
                    format!(
                        "cairn_lock_store_up{{group=\"{}\"}} {}",
                        g.group,
                        u8::from(g.error.is_none())
                    )
                })
                .collect(),
        );
        out
    }
}
