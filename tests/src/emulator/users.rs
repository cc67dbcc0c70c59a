//! The emulator's users: their passwords, whether an administrator
//! created them so that they must choose a new password first
//! (`FORCE_CHANGE_PASSWORD`), and the sessions of pending challenges.

use std::collections::HashMap;
use std::sync::Mutex;

use super::User;

/// The shortest new password accepted, as Cognito's default policy.
pub(crate) const MIN_PASSWORD_LEN: usize = 8;

/// What a password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The password is right and the user may have tokens.
    Valid,
    /// The password is right, but a new one must be set first.
    MustChange,
    /// Unknown user or wrong password.
    Wrong,
}

/// Why a challenge answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// The session is unknown, used up, or belongs to another user.
    BadSession,
    /// The new password is shorter than [`MIN_PASSWORD_LEN`].
    TooShort,
}

struct Account {
    password: String,
    must_change: bool,
}

/// Every user of one emulator run.
pub(crate) struct Directory {
    accounts: Mutex<HashMap<String, Account>>,
    /// Challenge sessions and the user each was issued to.
    sessions: Mutex<HashMap<String, String>>,
    first: String,
}

impl Directory {
    /// The users of `users`; those named in `must_change` start in
    /// `FORCE_CHANGE_PASSWORD`. Every name there must be a user.
    pub(crate) fn new(
        users: Vec<User>,
        must_change: &[String],
    ) -> anyhow::Result<Self> {
        let first = users.first().map(|u| u.name.clone()).unwrap_or_default();
        let mut accounts: HashMap<String, Account> = users
            .into_iter()
            .map(|u| {
                let account =
                    Account { password: u.password, must_change: false };
                (u.name, account)
            })
            .collect();
        for name in must_change {
            let Some(account) = accounts.get_mut(name) else {
                anyhow::bail!(
                    "--force-change-password {name:?} names no --user"
                );
            };
            account.must_change = true;
        }
        Ok(Self {
            accounts: Mutex::new(accounts),
            sessions: Mutex::new(HashMap::new()),
            first,
        })
    }

    /// The first user given: the administrator of a self-hosted server.
    pub(crate) fn first(&self) -> &str {
        &self.first
    }

    /// Checks a login.
    pub(crate) fn check(&self, name: &str, password: &str) -> Check {
        match lock(&self.accounts).get(name) {
            Some(account) if account.password == password => {
                if account.must_change {
                    Check::MustChange
                } else {
                    Check::Valid
                }
            }
            _ => Check::Wrong,
        }
    }

    /// Remembers `session` as the challenge session of `name`.
    pub(crate) fn open_session(&self, name: &str, session: String) {
        lock(&self.sessions).insert(session, name.to_owned());
    }

    /// Sets a new password with a challenge session, which is used up
    /// whether or not the password is accepted, as Cognito's are.
    pub(crate) fn answer(
        &self,
        name: &str,
        session: &str,
        new_password: &str,
    ) -> Result<(), AnswerError> {
        let owner = lock(&self.sessions).remove(session);
        if owner.as_deref() != Some(name) {
            return Err(AnswerError::BadSession);
        }
        if new_password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AnswerError::TooShort);
        }
        let mut accounts = lock(&self.accounts);
        let account = accounts.get_mut(name).ok_or(AnswerError::BadSession)?;
        account.password = new_password.to_owned();
        account.must_change = false;
        Ok(())
    }
}

/// The maps hold whole entries only, so a lock poisoned by a panicking
/// handler is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_user_sets_a_new_password_once_per_session() {
        let users = vec![User::new("ann", "temp-pass"), User::new("bo", "x")];
        let directory =
            Directory::new(users, &["ann".to_owned()]).expect("directory");
        assert_eq!(directory.check("ann", "temp-pass"), Check::MustChange);
        assert_eq!(directory.check("bo", "x"), Check::Valid);
        assert_eq!(directory.check("bo", "y"), Check::Wrong);

        directory.open_session("ann", "s1".into());
        assert_eq!(
            directory.answer("bo", "s1", "long-enough"),
            Err(AnswerError::BadSession)
        );
        directory.open_session("ann", "s2".into());
        assert_eq!(
            directory.answer("ann", "s2", "short"),
            Err(AnswerError::TooShort)
        );
        assert_eq!(
            directory.answer("ann", "s2", "long-enough"),
            Err(AnswerError::BadSession)
        );
        directory.open_session("ann", "s3".into());
        assert_eq!(directory.answer("ann", "s3", "long-enough"), Ok(()));

        assert_eq!(directory.check("ann", "temp-pass"), Check::Wrong);
        assert_eq!(directory.check("ann", "long-enough"), Check::Valid);
        assert!(
            Directory::new(vec![User::new("a", "b")], &["zed".into()]).is_err()
        );
    }
}
