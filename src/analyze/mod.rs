//! Analyze: the domain core that decides when waste was dumped and when it was cleared. Plain
//! synchronous Rust — no tokio, no I/O, no ort or retina: detections and a time go in, events
//! come out, so every rule is tested with scripted sequences and simulated time.
//!
//! Built so far: [`track`] (object tracking with time-based ageing) and [`background`]
//! (class-agnostic static foreground with global-change re-learning). The dumping state machine,
//! adaptive sampling, replay and eval follow (issue 4).

pub mod background;
pub mod track;
