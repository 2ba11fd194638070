//! The admin bearer token: held zeroized, never shown by `Debug`, compared in constant time.
//!
//! A mutation handler takes [`Admin`] as its first extractor, so the token is checked before the
//! body is read: no header or a header that is not `Bearer <token>` is 401, a wrong token 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// The admin token of the node, as read from its file by the binary.
#[derive(Clone)]
pub struct AdminToken {
    /// BLAKE3 of the token: comparing digests of equal length makes the comparison independent
    /// of the presented token's length as well as of its content.
    digest: Zeroizing<[u8; 32]>,
}

impl AdminToken {
    /// The token `secret` (surrounding whitespace, such as the file's newline, is not part of
    /// it). `None` if it is empty.
    pub fn new(secret: &str) -> Option<Self> {
        let secret = secret.trim();
        if secret.is_empty() {
            return None;
        }
        Some(AdminToken { digest: Zeroizing::new(*blake3::hash(secret.as_bytes()).as_bytes()) })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = Zeroizing::new(*blake3::hash(presented).as_bytes());
        bool::from(self.digest.ct_eq(&*presented))
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Proof that the request carried the admin token; a mutation handler's first argument.
#[derive(Debug)]
pub struct Admin;

/// Where the extractor finds the token to compare with.
pub(crate) trait HasAdminToken {
    fn admin_token(&self) -> &AdminToken;
}

/// Checks an `Authorization` header value: `Bearer <token>` with a single space.
pub(crate) fn check(header: Option<&[u8]>, token: &AdminToken) -> Result<Admin, Failure> {
    let Some(value) = header else { return Err(Failure::Unauthenticated) };
    let Some(presented) = value.strip_prefix(b"Bearer ") else {
        return Err(Failure::Unauthenticated);
    };
    if presented.is_empty() || presented.iter().any(|b| !b.is_ascii_graphic()) {
        return Err(Failure::Unauthenticated);
    }
    if token.matches(presented) { Ok(Admin) } else { Err(Failure::Forbidden) }
}

impl<S: HasAdminToken + Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        check(header, state.admin_token())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_the_exact_token_in_a_bearer_header_passes() {
        let token = AdminToken::new(&format!("{SECRET}\n")).unwrap();
        let ok = format!("Bearer {SECRET}");
        assert!(check(Some(ok.as_bytes()), &token).is_ok());
        assert_eq!(check(None, &token).unwrap_err(), Failure::Unauthenticated);
        for malformed in [
            format!("bearer {SECRET}"),
            format!("Basic {SECRET}"),
            format!("Bearer  {SECRET}"),
            "Bearer ".to_owned(),
            SECRET.to_owned(),
        ] {
            assert_eq!(
                check(Some(malformed.as_bytes()), &token).unwrap_err(),
                Failure::Unauthenticated,
                "{malformed:?}"
            );
        }
        let mut flipped = SECRET.as_bytes().to_vec();
        flipped[31] ^= 1;
        let wrong = [b"Bearer ".as_slice(), &flipped].concat();
        assert_eq!(check(Some(&wrong), &token).unwrap_err(), Failure::Forbidden);
        let prefix = format!("Bearer {}", &SECRET[..31]);
        assert_eq!(check(Some(prefix.as_bytes()), &token).unwrap_err(), Failure::Forbidden);
        let longer = format!("Bearer {SECRET}0");
        assert_eq!(check(Some(longer.as_bytes()), &token).unwrap_err(), Failure::Forbidden);
    }

    #[test]
    fn the_token_never_shows_and_cannot_be_empty() {
        let token = AdminToken::new(SECRET).unwrap();
        assert!(!format!("{token:?}").contains(SECRET));
        assert!(AdminToken::new(" \n").is_none());
    }
}
