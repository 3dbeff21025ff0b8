//! The strand bridge node on a Raspberry Pi Pico (RP2040) with an RFM95W
//! (SX1276) LoRa module: UART0 (GP0 TX, GP1 RX, 115200 8N1) to the host on
//! one side, the radio on the other. Wiring in docs/user-guide.md:
//!
//! | RFM95W | Pico |
//! |---|---|
//! | SCK / MOSI / MISO / NSS | GP18 / GP19 / GP16 / GP17 (SPI0) |
//! | RESET | GP20 |
//! | DIO0 | GP21 |
#![no_std]
#![no_main]

use embassy_executor::Spawner;
use embassy_rp::bind_interrupts;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Input, Level, Output, Pull};
use embassy_rp::peripherals::{DMA_CH0, DMA_CH1, UART0};
use embassy_rp::spi::{self, Spi};
use embassy_rp::uart::{self, BufferedInterruptHandler, BufferedUart, BufferedUartRx, BufferedUartTx};
use embassy_time::Delay;
use embedded_hal_bus::spi::ExclusiveDevice;
use lora_phy::iv::GenericSx127xInterfaceVariant;
use lora_phy::sx127x::{self, Sx1276, Sx127x};
use lora_phy::LoRa;
#[cfg(not(feature = "defmt"))]
use panic_halt as _;
use static_cell::StaticCell;
use strand_embassy_node::node::{self, NodeMemory};
use strand_embassy_node::radio::{self, RadioParams};
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_halt as _};

bind_interrupts!(struct Irqs {
    UART0_IRQ => BufferedInterruptHandler<UART0>;
    DMA_IRQ_0 => embassy_rp::dma::InterruptHandler<DMA_CH0>, embassy_rp::dma::InterruptHandler<DMA_CH1>;
});

/// The host side's line rate.
const BAUD: u32 = 115_200;
/// EU868's 10% sub-band (869.4-869.65 MHz); change for your region.
const FREQUENCY_HZ: u32 = 869_525_000;
/// Transmit power: the RFM95W's PA_BOOST output.
const POWER_DBM: i32 = 14;

type Radio = LoRa<
    Sx127x<
        ExclusiveDevice<Spi<'static, embassy_rp::peripherals::SPI0, spi::Async>, Output<'static>, Delay>,
        GenericSx127xInterfaceVariant<Output<'static>, Input<'static>>,
        Sx1276,
    >,
    Delay,
>;

/// The node's links and bridge: uninitialised at boot, filled in place.
static mut NODE: NodeMemory = NodeMemory::new();

#[embassy_executor::task]
async fn serial_rx(rx: BufferedUartRx) -> ! {
    strand_embassy_node::serial::reader(rx).await
}

#[embassy_executor::task]
async fn serial_tx(tx: BufferedUartTx) -> ! {
    strand_embassy_node::serial::writer(tx).await
}

#[embassy_executor::task]
async fn radio_task(lora: Radio, params: RadioParams) -> ! {
    radio::run(lora, params).await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());

    static TX_BUF: StaticCell<[u8; 512]> = StaticCell::new();
    static RX_BUF: StaticCell<[u8; 1024]> = StaticCell::new();
    let mut cfg = uart::Config::default();
    cfg.baudrate = BAUD;
    let uart = BufferedUart::new(
        p.UART0,
        p.PIN_0,
        p.PIN_1,
        Irqs,
        TX_BUF.init([0; 512]),
        RX_BUF.init([0; 1024]),
        cfg,
    );
    let (tx, rx) = uart.split();

    let mut spi_cfg = spi::Config::default();
    spi_cfg.frequency = 8_000_000;
    let bus = Spi::new(p.SPI0, p.PIN_18, p.PIN_19, p.PIN_16, p.DMA_CH0, p.DMA_CH1, Irqs, spi_cfg);
    let Ok(spi) = ExclusiveDevice::new(bus, Output::new(p.PIN_17, Level::High), Delay);
    let reset = Output::new(p.PIN_20, Level::High);
    let dio0 = Input::new(p.PIN_21, Pull::Down);
    let params = RadioParams::sf7(FREQUENCY_HZ, POWER_DBM);
    let radio_cfg = sx127x::Config { chip: Sx1276, tcxo_used: false, tx_boost: true, rx_boost: false };

    spawner.spawn(serial_rx(rx).expect("spawn once"));
    spawner.spawn(serial_tx(tx).expect("spawn once"));
    if let Ok(iv) = GenericSx127xInterfaceVariant::new(reset, dio0, None, None) {
        if let Ok(lora) = LoRa::new(Sx127x::new(spi, iv, radio_cfg), false, Delay).await {
            spawner.spawn(radio_task(lora, params).expect("spawn once"));
        }
    }

    let entropy = RoscRng.next_u64();
    // SAFETY: the only reference to NODE, made once, here.
    let memory = unsafe { &mut *core::ptr::addr_of_mut!(NODE) };
    node::run(memory, BAUD, params.byte_rate(), entropy).await
}
