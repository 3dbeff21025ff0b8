//! The config file: named links, so `strand pipe backup-serial` works.
//!
//! ```toml
//! # ~/.config/strand/strand.toml
//! [links.backup-serial]
//! address = "/dev/serial/by-id/usb-FTDI_FT232R_A10K3ZQ2-if00-port0"
//! baud = 2000000
//! parity = "none"      # none | even | odd
//! flow = "none"        # none | rts-cts
//! ```

use crate::address::Address;
use crate::transport::{Flow, Parity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One named link.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// Any link address (device path, tcp:..., exec:...).
    pub address: String,
    /// Serial line rate.
    pub baud: Option<u32>,
    /// Serial parity.
    pub parity: Option<Parity>,
    /// Serial flow control.
    pub flow: Option<Flow>,
    /// Line rate in bit/s for `diode-tx`'s pacing (a UDP path into a diode
    /// carries only so much, and nothing comes back to say so).
    pub rate: Option<u64>,
}

/// The whole file.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Named links.
    #[serde(default)]
    pub links: BTreeMap<String, LinkEntry>,
}

/// Where the config file is looked for by default.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("strand").join("strand.toml"))
}

/// Loads the config file; a missing default file is an empty config, a
/// missing file named explicitly is an error.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(ConfigFile, Option<PathBuf>)> {
    let (path, must_exist) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok((ConfigFile::default(), None)),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let cfg =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?;
            Ok((cfg, Some(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            Ok((ConfigFile::default(), Some(path)))
        }
        Err(e) => Err(anyhow::anyhow!("cannot read config file {}: {e}", path.display())),
    }
}

impl ConfigFile {
    /// Resolves a named link to its address and settings.
    pub fn resolve(&self, name: &str, path: Option<&Path>) -> anyhow::Result<(Address, LinkEntry)> {
        let Some(entry) = self.links.get(name) else {
            let file = path.map_or("the config file".to_string(), |p| p.display().to_string());
            anyhow::bail!(
                "unknown link {name:?}: not a device path (/dev/ttyUSB0), tcp:HOST:PORT, tcp-listen:PORT, exec:CMD or stdio, and no [links.{name}] in {file}"
            );
        };
        let addr = Address::parse(&entry.address)?;
        if let Address::Named(n) = &addr {
            anyhow::bail!("link {name:?} in the config names another name ({n:?}); give an address");
        }
        Ok((addr, entry.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        let cfg: ConfigFile = toml::from_str(
            "[links.backup]\naddress = \"/dev/ttyUSB0\"\nbaud = 2000000\nflow = \"rts-cts\"\n[links.net]\naddress = \"tcp:host:7000\"\n",
        )
        .unwrap();
        let (a, e) = cfg.resolve("backup", None).unwrap();
        assert_eq!(a, Address::Serial("/dev/ttyUSB0".into()));
        assert_eq!((e.baud, e.flow), (Some(2_000_000), Some(Flow::RtsCts)));
        assert_eq!(cfg.resolve("net", None).unwrap().0, Address::Tcp("host:7000".into()));
        let err = cfg.resolve("nope", None).unwrap_err().to_string();
        assert!(err.contains("unknown link \"nope\""), "{err}");
    }

    #[test]
    fn typos_are_reported() {
        let err = toml::from_str::<ConfigFile>("[links.x]\nadress = \"/dev/x\"\n").unwrap_err();
        assert!(err.message().contains("adress"), "{}", err.message());
    }
}
