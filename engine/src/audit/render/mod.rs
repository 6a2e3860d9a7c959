//! Presenting an [`Audit`](super::Audit): [`table`] for terminals, [`html`] for a self-contained
//! report with inline SVG charts (`svg`). Rendering only reads the audit, never recomputes.

pub mod html;
mod svg;
pub mod table;
