//! OAuth2 service-account tokens (being written).
