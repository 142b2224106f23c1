//! Reference data and classification (being written).
