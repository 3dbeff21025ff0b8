//! `strand list`: the serial ports of this machine, with what identifies a USB adapter (VID:PID,
//! serial number, manufacturer, product) and its stable `/dev/serial/by-id/` path — the name to
//! put in a config file, as `/dev/ttyUSB0` changes with the order adapters are plugged in.
//!
//! Ports come from `serialport::available_ports` (on Linux a scan of `/sys/class/tty`, which
//! lists real UARTs and USB adapters; pseudo-terminals are not serial ports and are not listed).

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where udev makes stable names for serial devices.
pub const BY_ID: &str = "/dev/serial/by-id";

/// One serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    /// The device, e.g. `/dev/ttyUSB0`.
    pub device: String,
    /// `usb`, `pci`, `bluetooth` or `other`.
    pub kind: &'static str,
    /// USB vendor id, as 4 hex digits.
    pub vid: Option<String>,
    /// USB product id, as 4 hex digits.
    pub pid: Option<String>,
    /// USB serial number.
    pub serial_number: Option<String>,
    /// USB manufacturer string.
    pub manufacturer: Option<String>,
    /// USB product string.
    pub product: Option<String>,
    /// The stable path in `/dev/serial/by-id` that points at this device, if udev made one.
    pub by_id: Option<String>,
}

/// The ports of this machine, sorted by device name.
pub fn ports() -> Result<Vec<Port>, String> {
    // serialport panics where /sys/class/tty is missing (some containers): check first.
    if cfg!(target_os = "linux") && !Path::new("/sys/class/tty").is_dir() {
        return Ok(Vec::new());
    }
    let found = serialport::available_ports().map_err(|e| format!("cannot list serial ports: {e}"))?;
    let links = by_id_links(Path::new(BY_ID));
    let mut ports: Vec<Port> = found.into_iter().map(|info| port(info, &links)).collect();
    ports.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(ports)
}

/// The symlinks in `dir`, with the device each resolves to.
pub fn by_id_links(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut links: Vec<(PathBuf, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::canonicalize(e.path()).ok().map(|target| (e.path(), target)))
        .collect();
    links.sort();
    links
}

fn port(info: serialport::SerialPortInfo, links: &[(PathBuf, PathBuf)]) -> Port {
    let device = info.port_name;
    let real = std::fs::canonicalize(&device).unwrap_or_else(|_| PathBuf::from(&device));
    let by_id = links.iter().find(|(_, target)| *target == real).map(|(link, _)| link.display().to_string());
    let mut p = Port {
        device,
        kind: "other",
        vid: None,
        pid: None,
        serial_number: None,
        manufacturer: None,
        product: None,
        by_id,
    };
    match info.port_type {
        serialport::SerialPortType::UsbPort(usb) => {
            p.kind = "usb";
            p.vid = Some(format!("{:04x}", usb.vid));
            p.pid = Some(format!("{:04x}", usb.pid));
            p.serial_number = usb.serial_number;
            p.manufacturer = usb.manufacturer;
            p.product = usb.product;
        }
        serialport::SerialPortType::PciPort => p.kind = "pci",
        serialport::SerialPortType::BluetoothPort => p.kind = "bluetooth",
        serialport::SerialPortType::Unknown => {}
    }
    p
}

/// The table for people: one port per line, then its stable path indented below it.
pub fn render(ports: &[Port]) -> String {
    if ports.is_empty() {
        return "no serial ports found (is the adapter plugged in? `dmesg | tail` shows what the kernel saw)\n"
            .into();
    }
    let mut out = String::new();
    for p in ports {
        let mut line = format!("{:<14} {:<5}", p.device, p.kind);
        if let (Some(vid), Some(pid)) = (&p.vid, &p.pid) {
            line.push_str(&format!(" {vid}:{pid}"));
        }
        for (label, value) in [("", &p.manufacturer), ("", &p.product), ("serial ", &p.serial_number)] {
            if let Some(v) = value {
                line.push_str(&format!("  {label}{}", crate::transfer::names::printable(v)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if let Some(link) = &p.by_id {
            out.push_str(&format!("               {link}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftdi() -> Port {
        Port {
            device: "/dev/ttyUSB0".into(),
            kind: "usb",
            vid: Some("0403".into()),
            pid: Some("6001".into()),
            serial_number: Some("A10K3ZQ2".into()),
            manufacturer: Some("FTDI".into()),
            product: Some("FT232R USB UART".into()),
            by_id: Some("/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3ZQ2-if00-port0".into()),
        }
    }

    #[test]
    fn a_usb_adapter_shows_its_ids_and_stable_path() {
        let text = render(&[ftdi()]);
        assert_eq!(
            text,
            "/dev/ttyUSB0   usb   0403:6001  FTDI  FT232R USB UART  serial A10K3ZQ2\n               /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3ZQ2-if00-port0\n"
        );
        let json = serde_json::to_value([ftdi()]).unwrap();
        assert_eq!(json[0]["vid"], "0403");
        assert_eq!(json[0]["by_id"], "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3ZQ2-if00-port0");
        assert!(render(&[]).starts_with("no serial ports found"));
    }

    #[test]
    fn by_id_links_resolve_to_their_devices() {
        let (d, devs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dev = devs.path().join("ttyUSB7");
        std::fs::write(&dev, b"").unwrap();
        std::os::unix::fs::symlink(&dev, d.path().join("usb-X_Y_123-if00-port0")).unwrap();
        std::os::unix::fs::symlink(d.path().join("gone"), d.path().join("dangling")).unwrap();
        let links = by_id_links(d.path());
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].1, std::fs::canonicalize(&dev).unwrap());
    }
}
