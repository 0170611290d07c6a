//! Every `grant_type` this project speaks, as its token endpoint registers
//! them and its client sends them. The first four are plain OAuth; the last
//! two are what the Reciprocal OAuth drafts add, registered by `link/`.

use crate::text_enum::text_enum;

text_enum! {
    pub enum GrantType {
        /// RFC 6749 4.1.3.
        AuthorizationCode = "authorization_code",
        /// RFC 6749 6.
        RefreshToken = "refresh_token",
        /// RFC 6749 4.4.
        ClientCredentials = "client_credentials",
        /// RFC 8628 3.4.
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
        /// draft-ietf-oauth-reciprocal 2.2: the pushed code, the token in `access_token`.
        Reciprocal = "urn:ietf:params:oauth:grant-type:reciprocal",
        /// draft-hardt-oauth-mutual-00 2: the same push, the token in `Authorization: Bearer`.
        LegacyMutual = "mutual_authorization_code",
    }
}

#[cfg(test)]
mod tests {
    use super::GrantType;

    #[test]
    fn every_grant_type_reads_back_as_itself() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(*g));
        }
        assert_eq!(GrantType::parse("password"), None, "RFC 9700 2.4: no resource owner password grant");
    }
}
