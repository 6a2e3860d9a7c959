//! Source readers. TO BE WRITTEN by the source-reader helper.
pub mod spec;
