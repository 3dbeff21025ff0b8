//! `diodenet --interleave PASSES`: why a one-pass send interleaves every
//! block of a file rather than groups of a few (docs/design.md, "At network
//! speed"). Simulates one-pass sends of a file — its real layout, the real
//! first-pass repair for the loss — over the relay's loss model, sending
//! groups of blocks in turn (symbol `i` of each block of the group before
//! `i + 1` of any, as the sender does), and counts the passes that leave a
//! block with fewer than `k` symbols. Nothing is sent on a network.

use strand_link::diode::sender::ONE_PASS_FAIL;
use strand_link::diode::{repair_for_loss, Layout};

use crate::relay::{Dropper, Loss};

/// Group sizes tried: the whole file first.
const GROUPS: [usize; 6] = [usize::MAX, 6, 4, 3, 2, 1];

/// Prints, per loss and group size, the passes that failed and the spread
/// of each block's losses against the binomial one the repair assumes.
pub fn run(bytes: u64, symbol_size: u16, losses: &[Loss], passes: u64) -> Result<(), String> {
    let layout = Layout::choose(bytes, symbol_size).ok_or_else(|| format!("no layout for {bytes} bytes"))?;
    let k: Vec<usize> =
        (0..layout.blocks()).map(|b| layout.block_symbols(b as u16).unwrap_or(0) as usize).collect();
    println!("| loss | blocks per group | failed passes | lost per block: sd / binomial sd |");
    println!("|---|---|---|---|");
    for &loss in losses {
        let p = loss.p();
        let sent: Vec<usize> =
            k.iter().map(|&k| k + repair_for_loss(k as u32, p as f32, ONE_PASS_FAIL) as usize).collect();
        for (g, &group) in GROUPS.iter().enumerate() {
            let order = schedule(&sent, group);
            let mut dropper = Dropper::new(loss, 0x5eed + g as u64);
            let (mut failed, mut sum, mut sum2, mut n) = (0u64, 0f64, 0f64, 0f64);
            for _ in 0..passes {
                let mut lost = vec![0usize; k.len()];
                for &b in &order {
                    lost[b] += usize::from(dropper.drop_next());
                }
                failed += u64::from(lost.iter().zip(&sent).zip(&k).any(|((l, s), k)| s - l < *k));
                for &l in &lost {
                    (sum, sum2, n) = (sum + l as f64, sum2 + (l * l) as f64, n + 1.0);
                }
            }
            let sd = (sum2 / n - (sum / n).powi(2)).max(0.0).sqrt();
            let binomial = (sent[0] as f64 * p * (1.0 - p)).sqrt();
            let label = if group >= k.len() { format!("all {}", k.len()) } else { group.to_string() };
            println!("| {} | {label} | {failed} of {passes} | {sd:.1} / {binomial:.1} |", loss.label());
        }
    }
    Ok(())
}

/// The blocks of each symbol sent, in order: groups of `group` blocks in
/// turn, round-robin within a group.
fn schedule(sent: &[usize], group: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(sent.iter().sum());
    for first in (0..sent.len()).step_by(group.min(sent.len())) {
        let blocks = first..(first + group).min(sent.len());
        let longest = blocks.clone().map(|b| sent[b]).max().unwrap_or(0);
        for i in 0..longest {
            order.extend(blocks.clone().filter(|&b| i < sent[b]));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_send_every_symbol_once_round_robin_within_a_group() {
        let order = schedule(&[3, 2, 2], 2);
        assert_eq!(order, [0, 1, 0, 1, 0, 2, 2]);
        assert_eq!(schedule(&[2, 2, 1], usize::MAX), [0, 1, 2, 0, 1]);
    }
}
