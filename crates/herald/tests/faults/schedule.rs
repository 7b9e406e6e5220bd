//! The fault schedule, drawn from the seed: which fault, on which node, when and for how
//! long. The same seed gives the same schedule (the timing of what the system does in between
//! varies, as on any machine).

use std::time::Duration;

/// A fault the suite can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SIGKILL a node, start it again at once.
    Kill,
    /// SIGSTOP a node, SIGCONT after the fault's length.
    Stop,
    /// SQLite: the data directory's filesystem full, then space back.
    DiskFull,
    /// Postgres: every connection between a node and the database cut, new ones refused.
    Cut,
    /// Postgres: nothing crosses between a node and the database (a partition), then it heals.
    Partition,
    /// Postgres restarted (`pg_ctlcluster … restart`).
    PostgresRestart,
    /// A node restarted with its clock ahead by two seconds (libfaketime), within the
    /// documented margin (half the lease), for the fault's length.
    ClockSkew,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "SIGKILL + restart",
            Kind::Stop => "SIGSTOP / SIGCONT",
            Kind::DiskFull => "disk full",
            Kind::Cut => "database connections cut",
            Kind::Partition => "node-database partition",
            Kind::PostgresRestart => "Postgres restart",
            Kind::ClockSkew => "clock +2s",
        }
    }

    /// What injecting it takes besides its length (starting nodes again).
    fn overhead(self) -> Duration {
        match self {
            Kind::Kill => Duration::from_secs(1),
            Kind::ClockSkew => Duration::from_secs(5),
            Kind::PostgresRestart => Duration::from_secs(3),
            _ => Duration::from_millis(100),
        }
    }

    /// Its length, between these.
    fn lengths(self) -> (u64, u64) {
        match self {
            Kind::Kill | Kind::PostgresRestart => (0, 0),
            Kind::Stop => (1_000, 8_000),
            Kind::DiskFull => (2_000, 6_000),
            Kind::Cut => (500, 3_000),
            Kind::Partition => (2_000, 8_000),
            Kind::ClockSkew => (8_000, 15_000),
        }
    }
}

/// One planned fault.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: Kind,
    /// Which node (for faults of one node).
    pub node: usize,
    /// The pause before it, after the previous one ended.
    pub gap: Duration,
    pub length: Duration,
}

/// splitmix64: small, fast and enough for a schedule.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Faults to fill `period`: every kind once first (in an order drawn from the seed), then
/// kinds drawn at random.
pub fn plan(seed: u64, kinds: &[Kind], nodes: usize, period: Duration) -> Vec<Planned> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<Kind> = kinds.to_vec();
    for i in (1..order.len()).rev() {
        let j = rng.between(0, i as u64) as usize;
        order.swap(i, j);
    }
    let mut planned = Vec::new();
    let mut used = Duration::ZERO;
    let mut i = 0;
    loop {
        let kind = match order.get(i) {
            Some(kind) => *kind,
            None => kinds[rng.between(0, kinds.len() as u64 - 1) as usize],
        };
        i += 1;
        let (low, high) = kind.lengths();
        let fault = Planned {
            kind,
            node: rng.between(0, nodes as u64 - 1) as usize,
            gap: Duration::from_millis(rng.between(2_000, 6_000)),
            length: Duration::from_millis(rng.between(low, high)),
        };
        used += fault.gap + fault.length + kind.overhead();
        if used > period && i > kinds.len() {
            return planned;
        }
        planned.push(fault);
    }
}

pub fn describe(planned: &[Planned]) -> String {
    planned
        .iter()
        .map(|p| format!("{} (node {}, {:?})", p.kind.name(), p.node + 1, p.length))
        .collect::<Vec<_>>()
        .join(", ")
}
