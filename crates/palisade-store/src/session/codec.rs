//! Reading stored session fields back into a [`SessionRecord`], refusing anything that
//! does not validate (a store edited by hand must not produce a half-valid session).

use palisade_policy::clock::UnixMillis;
use palisade_policy::session::record::PreviousSecret;
use palisade_policy::session::{
    PublicId, Roles, SecretHash, SessionRecord, SessionStoreError, UserId,
};

/// The text form of a record, as SQLite columns and Redis hash fields hold it.
pub(crate) struct StoredFields<'a> {
    pub public_id: &'a str,
    pub user_id: &'a str,
    pub roles: &'a str,
    pub secret_hash: &'a str,
    pub previous_hash: &'a str,
    pub previous_valid_until: UnixMillis,
    pub created_at: UnixMillis,
    pub last_seen_at: UnixMillis,
    pub rotated_at: UnixMillis,
}

impl StoredFields<'_> {
    pub(crate) fn decode(&self) -> Result<SessionRecord, SessionStoreError> {
        let corrupt = |what: &str| {
            SessionStoreError::Corrupt(format!("session {:?}: unreadable {what}", self.public_id))
        };
        let public_id = PublicId::parse(self.public_id).ok_or_else(|| corrupt("public id"))?;
        let user_id = UserId::parse(self.user_id).map_err(|_| corrupt("user id"))?;
        let roles = Roles::parse_list(self.roles).map_err(|_| corrupt("roles"))?;
        let secret_hash =
            SecretHash::from_hex(self.secret_hash).ok_or_else(|| corrupt("secret hash"))?;
        let previous = match self.previous_hash {
            "" => None,
            hex => Some(PreviousSecret {
                hash: SecretHash::from_hex(hex).ok_or_else(|| corrupt("previous hash"))?,
                valid_until: self.previous_valid_until,
            }),
        };
        Ok(SessionRecord {
            public_id,
            user_id,
            roles,
            secret_hash,
            previous,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            rotated_at: self.rotated_at,
        })
    }
}
