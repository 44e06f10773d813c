//! (filled by the class's owner)
