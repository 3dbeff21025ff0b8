//! The serial port's tasks: bytes between a UART (or USB-CDC) and the
//! bridge's pipes. Generic over `embedded-io-async`, so any HAL's buffered
//! UART halves fit; a board wraps each in an `#[embassy_executor::task]`.

use crate::queues::{SERIAL_RX, SERIAL_TX, WAKE};
use embedded_io_async::{Read, Write};

/// Moves received bytes into the bridge's pipe. Never returns.
pub async fn reader<R: Read>(mut rx: R) -> ! {
    let mut buf = [0u8; 64];
    loop {
        // A read error (overrun, framing) loses bytes the link recovers.
        if let Ok(n) = rx.read(&mut buf).await {
            if n > 0 {
                SERIAL_RX.write_all(&buf[..n]).await;
                WAKE.signal(());
            }
        }
    }
}

/// Sends what the bridge queued. Never returns.
pub async fn writer<W: Write>(mut tx: W) -> ! {
    let mut buf = [0u8; 64];
    loop {
        let n = SERIAL_TX.read(&mut buf).await;
        let _ = tx.write_all(&buf[..n]).await;
        // Room in the pipe: a frame that did not fit can go now.
        WAKE.signal(());
    }
}
