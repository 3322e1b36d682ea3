//! dsmon's domain types, shared by every other crate: a node's [`Metrics`], a logged [`Row`], a
//! node's [`NodeState`], who is asking ([`Caller`], [`Role`], [`Identity`]) and time ([`Clock`],
//! ticks, formatting). No I/O here.

mod time;

pub use time::{format_ts, tick_at_or_before, unix_now, Clock, SystemClock};

use serde::{Deserialize, Serialize};

/// The metric columns, in the order of [`Metrics::values`] and of the CSV export.
pub const METRICS: [&str; 5] = [
    "cpu_pct",
    "mem_pct",
    "disk_pct",
    "net_in_kbps",
    "net_out_kbps",
];

/// dsmon's four metrics (network as two values) for one node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metrics {
    /// CPU use over all cores, percent.
    pub cpu_pct: f64,
    /// Memory used, percent of total.
    pub mem_pct: f64,
    /// Disk used, percent (df-style: used / (used + available)).
    pub disk_pct: f64,
    /// Network received, kilobits per second.
    pub net_in_kbps: f64,
    /// Network sent, kilobits per second.
    pub net_out_kbps: f64,
}

impl Metrics {
    /// The values in the order of [`METRICS`] (and of the CSV export).
    pub fn values(&self) -> [f64; 5] {
        [
            self.cpu_pct,
            self.mem_pct,
            self.disk_pct,
            self.net_in_kbps,
            self.net_out_kbps,
        ]
    }

    /// From values in [`METRICS`] order.
    pub fn from_values(v: [f64; 5]) -> Self {
        Self {
            cpu_pct: v[0],
            mem_pct: v[1],
            disk_pct: v[2],
            net_in_kbps: v[3],
            net_out_kbps: v[4],
        }
    }

    /// From values in [`METRICS`] order when all five are there (a row of an unreachable node has
    /// none).
    pub fn from_options(v: [Option<f64>; 5]) -> Option<Self> {
        match v {
            [Some(a), Some(b), Some(c), Some(d), Some(e)] => {
                Some(Self::from_values([a, b, c, d, e]))
            }
            _ => None,
        }
    }

    /// Rounded to 3 decimals: Netdata keeps about 7 significant digits, so more is noise.
    pub fn rounded(self) -> Self {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        Self::from_values(self.values().map(r))
    }
}

/// One logged row: a node's averages over the interval that ends at `ts`, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Unix seconds (UTC) at the end of the interval.
    pub ts: i64,
    pub node: String,
    pub metrics: Option<Metrics>,
    pub error: Option<String>,
}

/// A node as the engine last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Not polled yet.
    Pending,
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// Whether this role includes everything `need` may do.
    pub fn allows(self, need: Role) -> bool {
        self == Role::Admin || need == Role::User
    }
}

/// Who is asking, with the role resolved for this request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Caller {
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
}

impl Caller {
    /// The single local user of a dsmon without sign-in: an Admin.
    pub fn local() -> Self {
        Self {
            email: "local".into(),
            name: None,
            role: Role::Admin,
        }
    }
}

/// A verified identity from a provider's ID token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sub: String,
    /// Lowercased.
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Google Workspace domain (`hd`), lowercased.
    pub hd: Option<String>,
    /// When the ID token expires (Unix seconds).
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_include_what_they_should() {
        assert!(Role::Admin.allows(Role::Admin));
        assert!(Role::Admin.allows(Role::User));
        assert!(Role::User.allows(Role::User));
        assert!(!Role::User.allows(Role::Admin));
    }

    #[test]
    fn metrics_round_trip_through_values() {
        let m = Metrics::from_values([1.23456, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(m.values()[0], 1.23456);
        assert_eq!(m.rounded().cpu_pct, 1.235);
    }
}
