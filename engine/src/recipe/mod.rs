//! Recipes: the YAML language users write, loaded into a validated [`Recipe`].
//!
//! [`load`] reads a recipe file (following `extends`), applies stage inheritance and types every
//! field, collecting every problem as a located diagnostic. The result is either a fully valid
//! [`Recipe`] or the list of what to fix. Checks that need the sources' contents (can the sources
//! satisfy each stage?) belong to the planner.

mod fields;
mod load;
mod model;
pub mod names;

pub use load::{Loaded, load};
pub use model::*;
