//! The messages a run offers the mesh: Poisson arrivals per node, broadcast or
//! to a random other node, fixed before the run so every protocol is offered
//! exactly the same traffic for the same seed.

use std::time::Duration;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use strand_link::Instant;

use super::stream;

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Traffic {
    /// Every message to every node (REF-30 T1).
    Broadcast,
    /// Every message to one other node chosen at random (REF-30 T2).
    Direct,
}

impl Traffic {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Broadcast => "broadcast",
            Traffic::Direct => "direct",
        }
    }
}

/// One application message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Index in the run's message list (carried in the payload).
    pub index: u32,
    /// Sending node.
    pub origin: usize,
    /// Receiving node; `None` for a broadcast.
    pub dest: Option<usize>,
    /// When the application hands it to the mesh.
    pub at: Instant,
}

/// The time to a node's next message: exponential with mean `mean`.
pub fn next_interval(rng: &mut Pcg64Mcg, mean: Duration) -> Duration {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    Duration::from_secs_f64(-mean.as_secs_f64() * u.ln())
}

/// The destination of `origin`'s next message among `nodes` nodes.
pub fn destination(rng: &mut Pcg64Mcg, traffic: Traffic, nodes: usize, origin: usize) -> Option<usize> {
    match traffic {
        Traffic::Broadcast => None,
        Traffic::Direct => {
            let d = rng.random_range(0..nodes - 1);
            Some(if d >= origin { d + 1 } else { d })
        }
    }
}

/// A node's own random stream of intervals and destinations.
pub fn node_stream(seed: u64, origin: usize) -> Pcg64Mcg {
    stream(seed, stream::TRAFFIC, origin as u64)
}

/// Messages of `nodes` nodes, each sending at exponential intervals of mean
/// `mean_interval` from time zero until `duration`, in time order.
pub fn generate(
    nodes: usize,
    traffic: Traffic,
    mean_interval: Duration,
    duration: Duration,
    seed: u64,
) -> Vec<Message> {
    let mut out = Vec::new();
    for origin in 0..nodes {
        let mut rng = node_stream(seed, origin);
        let mut t = Instant::ZERO;
        loop {
            t = t + next_interval(&mut rng, mean_interval);
            if t >= Instant::ZERO + duration {
                break;
            }
            let dest = destination(&mut rng, traffic, nodes, origin);
            out.push(Message { index: 0, origin, dest, at: t });
        }
    }
    out.sort_by_key(|m| (m.at, m.origin));
    for (i, m) in out.iter_mut().enumerate() {
        m.index = i as u32;
    }
    out
}

/// The payload of message `index`, `len` bytes (at least 4): its index, then bytes
/// derived from it, so a receiver can tell which message arrived and that it is intact.
pub fn payload(index: u32, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| (index as usize * 131 + i * 7 + 1) as u8).collect();
    p[..4].copy_from_slice(&index.to_le_bytes());
    p
}

/// The message index a payload claims to carry.
pub fn index_of(payload: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(payload.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_poisson_with_the_mean_interval() {
        let two_h = Duration::from_secs(7200);
        let m = generate(30, Traffic::Broadcast, Duration::from_secs(100), two_h, 3);
        // 30 nodes x 72 expected each; the count is Poisson(2160), sd ~46.
        assert!((2000..2320).contains(&m.len()), "{} messages (seed 3)", m.len());
        assert!(m.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(m.iter().enumerate().all(|(i, x)| x.index == i as u32 && x.dest.is_none()));
        assert!(m.iter().all(|x| x.at < Instant::from_micros(7_200_000_000)));
        assert_eq!(m, generate(30, Traffic::Broadcast, Duration::from_secs(100), two_h, 3));
    }

    #[test]
    fn direct_messages_go_to_another_node_uniformly() {
        let m = generate(4, Traffic::Direct, Duration::from_secs(1), Duration::from_secs(3000), 1);
        let mut counts = [[0u32; 4]; 4];
        for x in &m {
            let d = x.dest.unwrap();
            assert_ne!(d, x.origin);
            counts[x.origin][d] += 1;
        }
        // ~3000 per origin over 3 destinations: each ~1000 (sd ~32).
        for (o, row) in counts.iter().enumerate() {
            for (d, &c) in row.iter().enumerate() {
                if o != d {
                    assert!((880..1120).contains(&c), "{o}->{d}: {c} (seed 1)");
                }
            }
        }
    }

    #[test]
    fn payloads_carry_their_index() {
        let p = payload(70_000, 40);
        assert_eq!(p.len(), 40);
        assert_eq!(index_of(&p), Some(70_000));
        assert_ne!(payload(1, 40), payload(2, 40));
        assert_eq!(index_of(&[1, 2]), None);
    }
}
