//! The strand bridge node on a NUCLEO-F411RE (STM32F411) with an SX1276
//! Arduino shield (e.g. Semtech SX1276MB1MAS): USART2, which the Nucleo's
//! ST-LINK offers to the host as a USB virtual COM port (115200 8N1), on one
//! side, the radio on the other.
//!
//! | SX1276 shield | Arduino | STM32F411 |
//! |---|---|---|
//! | SCK / MISO / MOSI | D13 / D12 / D11 | PA5 / PA6 / PA7 (SPI1) |
//! | NSS | D10 | PB6 |
//! | RESET | A0 | PA0 |
//! | DIO0 | D2 | PA10 |
//!
//! The F411 has no random number generator: session ids come from the
//! chip's unique id mixed with the microsecond at which the first byte from a
//! peer arrives (see `strand_embassy_node::node::run`).
#![no_std]
#![no_main]

#[cfg(feature = "defmt")]
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_stm32::exti::{self, ExtiInput};
use embassy_stm32::gpio::{Level, Output, Pull, Speed};
use embassy_stm32::mode::Async;
use embassy_stm32::peripherals::{DMA2_CH0, DMA2_CH3, USART2};
use embassy_stm32::spi::{self, Spi};
use embassy_stm32::time::Hertz;
use embassy_stm32::usart::{self, BufferedUart, BufferedUartRx, BufferedUartTx};
use embassy_stm32::{bind_interrupts, dma, interrupt};
use embassy_time::Delay;
use embedded_hal_bus::spi::ExclusiveDevice;
use lora_phy::iv::GenericSx127xInterfaceVariant;
use lora_phy::sx127x::{self, Sx1276, Sx127x};
use lora_phy::LoRa;
use panic_halt as _;
use static_cell::StaticCell;
use strand_embassy_node::node::{self, NodeMemory};
use strand_embassy_node::radio::{self, RadioParams};

bind_interrupts!(struct Irqs {
    USART2 => usart::BufferedInterruptHandler<USART2>;
    DMA2_STREAM3 => dma::InterruptHandler<DMA2_CH3>;
    DMA2_STREAM0 => dma::InterruptHandler<DMA2_CH0>;
    EXTI15_10 => exti::InterruptHandler<interrupt::typelevel::EXTI15_10>;
});

/// The host side's line rate.
const BAUD: u32 = 115_200;
/// EU868's 10% sub-band (869.4-869.65 MHz); change for your region.
const FREQUENCY_HZ: u32 = 869_525_000;
/// Transmit power (PA_BOOST on the SX1276MB1MAS).
const POWER_DBM: i32 = 14;

type Radio = LoRa<
    Sx127x<
        ExclusiveDevice<Spi<'static, Async, spi::mode::Master>, Output<'static>, Delay>,
        GenericSx127xInterfaceVariant<Output<'static>, ExtiInput<'static, Async>>,
        Sx1276,
    >,
    Delay,
>;

/// The node's links and bridge: uninitialised at boot, filled in place.
static mut NODE: NodeMemory = NodeMemory::new();

#[embassy_executor::task]
async fn serial_rx(rx: BufferedUartRx<'static>) -> ! {
    strand_embassy_node::serial::reader(rx).await
}

#[embassy_executor::task]
async fn serial_tx(tx: BufferedUartTx<'static>) -> ! {
    strand_embassy_node::serial::writer(tx).await
}

#[embassy_executor::task]
async fn radio_task(lora: Radio, params: RadioParams) -> ! {
    radio::run(lora, params).await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_stm32::init(Default::default());

    static TX_BUF: StaticCell<[u8; 512]> = StaticCell::new();
    static RX_BUF: StaticCell<[u8; 1024]> = StaticCell::new();
    let mut cfg = usart::Config::default();
    cfg.baudrate = BAUD;
    let Ok(uart) =
        BufferedUart::new(p.USART2, p.PA3, p.PA2, TX_BUF.init([0; 512]), RX_BUF.init([0; 1024]), Irqs, cfg)
    else {
        panic!("USART2 configuration")
    };
    let (tx, rx) = uart.split();

    let mut spi_cfg = spi::Config::default();
    spi_cfg.frequency = Hertz(4_000_000);
    let bus = Spi::new(p.SPI1, p.PA5, p.PA7, p.PA6, p.DMA2_CH3, p.DMA2_CH0, Irqs, spi_cfg);
    let Ok(spi) = ExclusiveDevice::new(bus, Output::new(p.PB6, Level::High, Speed::VeryHigh), Delay);
    let reset = Output::new(p.PA0, Level::High, Speed::Low);
    let dio0 = ExtiInput::new(p.PA10, p.EXTI10, Pull::Down, Irqs);
    let params = RadioParams::sf7(FREQUENCY_HZ, POWER_DBM);
    let radio_cfg = sx127x::Config { chip: Sx1276, tcxo_used: false, tx_boost: true, rx_boost: false };

    spawner.spawn(serial_rx(rx).expect("spawn once"));
    spawner.spawn(serial_tx(tx).expect("spawn once"));
    if let Ok(iv) = GenericSx127xInterfaceVariant::new(reset, dio0, None, None) {
        if let Ok(lora) = LoRa::new(Sx127x::new(spi, iv, radio_cfg), false, Delay).await {
            spawner.spawn(radio_task(lora, params).expect("spawn once"));
        }
    }

    // No RNG on the F411: the unique id, and (in `node::run`) the arrival
    // time of the first byte.
    let uid = embassy_stm32::uid::uid();
    let entropy = u64::from_le_bytes([uid[0], uid[1], uid[2], uid[3], uid[4], uid[5], uid[6], uid[7]])
        ^ u64::from(u32::from_le_bytes([uid[8], uid[9], uid[10], uid[11]])) << 17;
    // SAFETY: the only reference to NODE, made once, here.
    let memory = unsafe { &mut *core::ptr::addr_of_mut!(NODE) };
    node::run(memory, BAUD, params.byte_rate(), entropy).await
}
