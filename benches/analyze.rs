//! The analyzer's per-picture costs that grow with the picture: the background update of a
//! real 720p street (grey grid 160 cells wide), still and shaken, and the shake estimate and
//! resampling alone (issue 22: global motion compensation).
//!
//!     cargo bench --bench analyze

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use dumpwatch::analyze::GreyFrame;
use dumpwatch::analyze::align;
use dumpwatch::analyze::background::{BackgroundConfig, BackgroundModel, Held};

/// `grey` with its content moved `dx` pixels right (the edge repeated).
fn shaken(grey: &GreyFrame, dx: usize) -> GreyFrame {
    let w = grey.width as usize;
    let mut moved = grey.clone();
    for (row, src) in moved
        .data
        .chunks_exact_mut(w)
        .zip(grey.data.chunks_exact(w))
    {
        row[dx..].copy_from_slice(&src[..w - dx]);
    }
    for (row, src) in moved
        .chroma
        .chunks_exact_mut(w)
        .zip(grey.chroma.chunks_exact(w))
    {
        row[dx..].copy_from_slice(&src[..w - dx]);
    }
    moved
}

fn bench(c: &mut Criterion) {
    let frame = common::decoded_keyframe("vtest720");
    let grey = frame.grey().expect("a grey picture");
    let moved = shaken(&grey, 1);
    let grid = (grey.width as usize, grey.height as usize);
    let reference: Vec<f32> = grey.data.iter().map(|v| f32::from(*v)).collect();
    let picture: Vec<f32> = moved.data.iter().map(|v| f32::from(*v)).collect();
    c.bench_function("align/estimate_160_grid_3_cells", |b| {
        b.iter(|| align::estimate(&reference, &picture, grid, 3))
    });
    let shift = align::estimate(&reference, &picture, grid, 3);
    let cells: Vec<[f32; 1]> = picture.iter().map(|v| [*v]).collect();
    c.bench_function("align/move_back_160_grid", |b| {
        b.iter(|| align::moved_back(&cells, grid, shift))
    });

    let mut model = BackgroundModel::new(BackgroundConfig {
        shake_compensation: true,
        ..BackgroundConfig::default()
    });
    let mut t = 0.0;
    model.update(t, &grey, &Held::default());
    c.bench_function("background/update_720p_still", |b| {
        b.iter(|| {
            t += 0.5;
            model.update(t, &grey, &Held::default())
        })
    });
    let mut model = BackgroundModel::new(BackgroundConfig {
        shake_compensation: true,
        ..BackgroundConfig::default()
    });
    model.update(0.0, &grey, &Held::default());
    let mut t = 0.0;
    let mut k = 0;
    c.bench_function("background/update_720p_shaking_1px", |b| {
        b.iter(|| {
            t += 0.5;
            k += 1;
            model.update(t, if k % 2 == 0 { &grey } else { &moved }, &Held::default())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
