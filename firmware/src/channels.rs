//! A set of the 256 channel numbers, in 32 bytes.

/// A set of channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelSet([u32; 8]);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet([0; 8]);
    /// Every channel.
    pub const ALL: ChannelSet = ChannelSet([u32::MAX; 8]);

    /// The set of the given channels.
    pub const fn of(channels: &[u8]) -> ChannelSet {
        let mut s = [0u32; 8];
        let mut i = 0;
        while i < channels.len() {
            let ch = channels[i];
            s[(ch / 32) as usize] |= 1 << (ch % 32);
            i += 1;
        }
        ChannelSet(s)
    }

    /// Adds `ch`.
    pub fn insert(&mut self, ch: u8) {
        self.0[usize::from(ch / 32)] |= 1 << (ch % 32);
    }

    /// Removes `ch`.
    pub fn remove(&mut self, ch: u8) {
        self.0[usize::from(ch / 32)] &= !(1 << (ch % 32));
    }

    /// Whether `ch` is in the set.
    pub fn contains(&self, ch: u8) -> bool {
        self.0[usize::from(ch / 32)] & (1 << (ch % 32)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The channels in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| (0..32u8).filter(move |b| w & (1 << b) != 0).map(move |b| i as u8 * 32 + b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_iterate() {
        let mut s = ChannelSet::of(&[0, 2]);
        s.insert(255);
        s.insert(33);
        assert!(s.contains(2) && s.contains(255) && !s.contains(1));
        s.remove(2);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 33, 255]);
        assert!(ChannelSet::EMPTY.is_empty() && !s.is_empty());
        assert_eq!(ChannelSet::ALL.iter().count(), 256);
    }
}
