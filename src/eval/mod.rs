//! Evaluation against labelled footage (`dumpwatch eval`): the dataset format ([`dataset`]),
//! feedback from the operations center as a dataset ([`feedback`]), the scoring rules ([`score`]), running the real pipeline over the clips ([`run`]) and the
//! sweep plot ([`plot`]).

pub mod dataset;
pub mod feedback;
pub mod plot;
pub mod run;
pub mod score;
