//! Prints a hash of the bits of a few real FFTs as the analyzer plans them (RealFftPlanner,
//! which lets RustFFT choose AVX, SSE4.1 or scalar code at run time), and the path this CPU
//! takes. `ci/fft-paths.sh` runs it natively and under emulated CPUs to show whether the
//! paths give the same bits.

use realfft::RealFftPlanner;

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn main() {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    // The onset stage's frame (f32) and the tempo stage's autocorrelation sizes (f64).
    for n in [1024usize, 4096, 65_536] {
        let input = |i: usize| (i * 7919 % 1000) as f64 / 500.0 - 1.0;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let mut x: Vec<f32> = (0..n).map(|i| input(i) as f32).collect();
        let mut y = fft.make_output_vec();
        fft.process(&mut x, &mut y).expect("lengths match the plan");
        for c in &y {
            fnv(&mut hash, &c.re.to_le_bytes());
            fnv(&mut hash, &c.im.to_le_bytes());
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut x: Vec<f64> = (0..n).map(input).collect();
        let mut y = fft.make_output_vec();
        fft.process(&mut x, &mut y).expect("lengths match the plan");
        for c in &y {
            fnv(&mut hash, &c.re.to_le_bytes());
            fnv(&mut hash, &c.im.to_le_bytes());
        }
    }
    println!("fft {} bits {hash:016x}", analyzer_core::fft_path());
}
