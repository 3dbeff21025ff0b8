//! The strand bridge node on a RAK4631 WisBlock core (nRF52840 + SX1262):
//! UART1 of the WisBlock base board (TX P0.16, RX P0.15, 115200 8N1) to the
//! host on one side, the on-module SX1262 on the other. The radio's pins are
//! fixed by the module (SPI on P1.11/P1.12/P1.13, NSS P1.10, RESET P1.06,
//! DIO1 P1.15, BUSY P1.14, antenna switch P1.05/P1.07, TCXO at 1.7 V).
#![no_std]
#![no_main]

#[cfg(feature = "defmt")]
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_nrf::buffered_uarte::{self, BufferedUarte, BufferedUarteRx, BufferedUarteTx};
use embassy_nrf::gpio::{Input, Level, Output, OutputDrive, Pull};
use embassy_nrf::peripherals::{RNG, SPI3, UARTE0};
use embassy_nrf::rng::{self, Rng};
use embassy_nrf::spim::{self, Spim};
use embassy_nrf::{bind_interrupts, uarte};
use embassy_time::Delay;
use embedded_hal_bus::spi::ExclusiveDevice;
use lora_phy::iv::GenericSx126xInterfaceVariant;
use lora_phy::sx126x::{self, Sx1262, Sx126x, TcxoCtrlVoltage};
use lora_phy::LoRa;
use panic_halt as _;
use static_cell::StaticCell;
use strand_embassy_node::node::{self, NodeMemory};
use strand_embassy_node::radio::{self, RadioParams};

bind_interrupts!(struct Irqs {
    UARTE0 => buffered_uarte::InterruptHandler<UARTE0>;
    SPIM3 => spim::InterruptHandler<SPI3>;
    RNG => rng::InterruptHandler<RNG>;
});

/// The host side's line rate (uarte's default configuration).
const BAUD: u32 = 115_200;
/// EU868's 10% sub-band (869.4-869.65 MHz); change for your region.
const FREQUENCY_HZ: u32 = 869_525_000;
/// Transmit power.
const POWER_DBM: i32 = 14;

type Radio = LoRa<
    Sx126x<
        ExclusiveDevice<Spim<'static>, Output<'static>, Delay>,
        GenericSx126xInterfaceVariant<Output<'static>, Input<'static>>,
        Sx1262,
    >,
    Delay,
>;

/// The node's links and bridge: uninitialised at boot, filled in place.
static mut NODE: NodeMemory = NodeMemory::new();

#[embassy_executor::task]
async fn serial_rx(rx: BufferedUarteRx<'static>) -> ! {
    strand_embassy_node::serial::reader(rx).await
}

#[embassy_executor::task]
async fn serial_tx(tx: BufferedUarteTx<'static>) -> ! {
    strand_embassy_node::serial::writer(tx).await
}

#[embassy_executor::task]
async fn radio_task(lora: Radio, params: RadioParams) -> ! {
    radio::run(lora, params).await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_nrf::init(Default::default());

    let mut seed = [0u8; 8];
    Rng::new(p.RNG, Irqs).blocking_fill_bytes(&mut seed);

    static TX_BUF: StaticCell<[u8; 512]> = StaticCell::new();
    static RX_BUF: StaticCell<[u8; 1024]> = StaticCell::new();
    let uart = BufferedUarte::new(
        p.UARTE0,
        p.TIMER1,
        p.PPI_CH0,
        p.PPI_CH1,
        p.PPI_GROUP0,
        p.P0_15,
        p.P0_16,
        Irqs,
        uarte::Config::default(),
        RX_BUF.init([0; 1024]),
        TX_BUF.init([0; 512]),
    );
    let (rx, tx) = uart.split();

    let mut spi_cfg = spim::Config::default();
    spi_cfg.frequency = spim::Frequency::M8;
    let bus = Spim::new(p.SPI3, Irqs, p.P1_11, p.P1_13, p.P1_12, spi_cfg);
    let Ok(spi) = ExclusiveDevice::new(bus, Output::new(p.P1_10, Level::High, OutputDrive::Standard), Delay);
    let reset = Output::new(p.P1_06, Level::High, OutputDrive::Standard);
    let dio1 = Input::new(p.P1_15, Pull::Down);
    let busy = Input::new(p.P1_14, Pull::None);
    let rf_rx = Output::new(p.P1_05, Level::Low, OutputDrive::Standard);
    let rf_tx = Output::new(p.P1_07, Level::Low, OutputDrive::Standard);
    let params = RadioParams::sf7(FREQUENCY_HZ, POWER_DBM);
    let radio_cfg = sx126x::Config {
        chip: Sx1262,
        tcxo_ctrl: Some(TcxoCtrlVoltage::Ctrl1V7),
        use_dcdc: true,
        rx_boost: false,
    };

    spawner.spawn(serial_rx(rx).expect("spawn once"));
    spawner.spawn(serial_tx(tx).expect("spawn once"));
    if let Ok(iv) = GenericSx126xInterfaceVariant::new(reset, dio1, busy, Some(rf_rx), Some(rf_tx)) {
        if let Ok(lora) = LoRa::new(Sx126x::new(spi, iv, radio_cfg), false, Delay).await {
            spawner.spawn(radio_task(lora, params).expect("spawn once"));
        }
    }

    // SAFETY: the only reference to NODE, made once, here.
    let memory = unsafe { &mut *core::ptr::addr_of_mut!(NODE) };
    let entropy = u64::from_le_bytes(seed);
    node::run(memory, BAUD, params.byte_rate(), entropy).await
}
