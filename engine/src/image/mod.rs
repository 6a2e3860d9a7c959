//! Image geometry and pixels. TO BE WRITTEN by the image helper.
