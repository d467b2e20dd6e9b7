//! Evaluation against labelled footage (`dumpwatch eval`): the dataset format ([`dataset`]) and
//! the scoring rules ([`score`]). Running the real pipeline over the clips comes with the
//! analyzer (issue 4).

pub mod dataset;
pub mod score;
