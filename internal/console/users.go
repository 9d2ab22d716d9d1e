package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/isobox/isobox/internal/store"
)

// Roles of console users: an admin changes things, a viewer only looks.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

var (
	// ErrBadLogin is a wrong name or password (which of the two is not said).
	ErrBadLogin = errors.New("console: wrong user name or password")
	// ErrInvalid wraps a bad user name, role or password.
	ErrInvalid = errors.New("console: invalid")
	// ErrNoSession is an unknown, expired or ended session.
	ErrNoSession = errors.New("console: no session")
)

// argon2id parameters: OWASP's minimum for argon2id (19 MiB, 2 passes, 1
// lane), so that a login costs tens of milliseconds, not seconds, on a
// small box; the parameters are stored with each hash, so raising them
// later keeps old hashes working.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	// MinPassword is the shortest password accepted.
	MinPassword = 12
)

var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// HashPassword returns the PHC-format argon2id hash of password with a
// fresh salt.
func HashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// CheckPassword reports whether password matches a HashPassword hash, in
// constant time.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 128 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against when the user does not exist, so that a
// login takes as long for a wrong name as for a wrong password.
var dummyHash = HashPassword("isobox console timing equaliser")

// User is a console user.
type User struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Users keeps console users and their sessions in the database.
type Users struct {
	db  *store.DB
	now func() time.Time
	// IdleTimeout ends a session not used this long; AbsoluteTimeout ends
	// every session this long after login.
	IdleTimeout, AbsoluteTimeout time.Duration
}

// NewUsers returns the user store on db.
func NewUsers(db *store.DB) *Users {
	return &Users{db: db, now: time.Now, IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour}
}

// Put creates the user name, or replaces its role and password.
func (u *Users) Put(ctx context.Context, name, role, password string) (created bool, err error) {
	if !userName.MatchString(name) {
		return false, fmt.Errorf("%w: user name %q: letters, digits and . _ @ - (at most 64)", ErrInvalid, name)
	}
	if role != RoleAdmin && role != RoleViewer {
		return false, fmt.Errorf("%w: role %q: admin or viewer", ErrInvalid, role)
	}
	if len([]rune(password)) < MinPassword || len(password) > 1024 {
		return false, fmt.Errorf("%w: the password must have at least %d characters", ErrInvalid, MinPassword)
	}
	now := u.now().UnixMilli()
	hash := HashPassword(password)
	err = u.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE console_users SET role = ?, password_hash = ?, updated_at = ? WHERE name = ?`, role, hash, now, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			// A new password ends the user's sessions.
			_, err = tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_name = ?`, name)
			return err
		}
		created = true
		_, err = tx.ExecContext(ctx, `INSERT INTO console_users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			name, role, hash, now, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("console: save user %s: %w", name, err)
	}
	return created, nil
}

// Delete removes a user and its sessions.
func (u *Users) Delete(ctx context.Context, name string) error {
	return u.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE user_name = ?`, name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM console_users WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: no user %q", ErrInvalid, name)
		}
		return nil
	})
}

// List returns every user by name.
func (u *Users) List(ctx context.Context) ([]User, error) {
	rows, err := u.db.QueryContext(ctx, `SELECT name, role, created_at FROM console_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("console: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var x User
		var ms int64
		if err := rows.Scan(&x.Name, &x.Role, &ms); err != nil {
			return nil, err
		}
		x.CreatedAt = time.UnixMilli(ms)
		out = append(out, x)
	}
	return out, rows.Err()
}

// Count returns the number of users.
func (u *Users) Count(ctx context.Context) (int, error) {
	var n int
	err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM console_users`).Scan(&n)
	return n, err
}

// Verify checks a name and password.
func (u *Users) Verify(ctx context.Context, name, password string) (User, error) {
	var x User
	var hash string
	var ms int64
	err := u.db.QueryRowContext(ctx, `SELECT name, role, password_hash, created_at FROM console_users WHERE name = ?`, name).Scan(&x.Name, &x.Role, &hash, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		CheckPassword(dummyHash, password)
		return User{}, ErrBadLogin
	}
	if err != nil {
		return User{}, fmt.Errorf("console: read user: %w", err)
	}
	if !CheckPassword(hash, password) {
		return User{}, ErrBadLogin
	}
	x.CreatedAt = time.UnixMilli(ms)
	return x, nil
}

// Session is a logged-in user.
type Session struct {
	User User
	// CSRF is the token every state-changing request must carry.
	CSRF string
	// Created is the login time.
	Created time.Time
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// Login starts a session for user and returns its id (for the cookie);
// only its hash is stored.
func (u *Users) Login(ctx context.Context, user User, remote string) (string, Session, error) {
	id := randomToken()
	s := Session{User: user, CSRF: randomToken(), Created: u.now()}
	now := s.Created.UnixMilli()
	_, err := u.db.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, user_name, csrf, remote, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)`,
		hashID(id), user.Name, s.CSRF, truncate(remote, 128), now, now)
	if err != nil {
		return "", Session{}, fmt.Errorf("console: save session: %w", err)
	}
	return id, s, nil
}

// Session returns the live session with id and marks it used; an idle or
// too old session is deleted and ErrNoSession returned.
func (u *Users) Session(ctx context.Context, id string) (Session, error) {
	if id == "" || len(id) > 100 {
		return Session{}, ErrNoSession
	}
	h := hashID(id)
	var s Session
	var created, seen, userCreated int64
	err := u.db.QueryRowContext(ctx, `SELECT s.csrf, s.created_at, s.last_seen, u.name, u.role, u.created_at
		FROM console_sessions s JOIN console_users u ON u.name = s.user_name WHERE s.id_hash = ?`, h).
		Scan(&s.CSRF, &created, &seen, &s.User.Name, &s.User.Role, &userCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("console: read session: %w", err)
	}
	now := u.now()
	if now.Sub(time.UnixMilli(seen)) > u.IdleTimeout || now.Sub(time.UnixMilli(created)) > u.AbsoluteTimeout {
		u.Logout(ctx, id)
		return Session{}, ErrNoSession
	}
	s.Created, s.User.CreatedAt = time.UnixMilli(created), time.UnixMilli(userCreated)
	// Touch at most once a minute: most page views are reads.
	if now.Sub(time.UnixMilli(seen)) > time.Minute {
		if _, err := u.db.ExecContext(ctx, `UPDATE console_sessions SET last_seen = ? WHERE id_hash = ?`, now.UnixMilli(), h); err != nil {
			return Session{}, fmt.Errorf("console: touch session: %w", err)
		}
	}
	return s, nil
}

// Logout ends the session with id.
func (u *Users) Logout(ctx context.Context, id string) error {
	_, err := u.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, hashID(id))
	return err
}

// Sweep deletes expired sessions.
func (u *Users) Sweep(ctx context.Context) error {
	now := u.now()
	_, err := u.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE last_seen < ? OR created_at < ?`,
		now.Add(-u.IdleTimeout).UnixMilli(), now.Add(-u.AbsoluteTimeout).UnixMilli())
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// tokensEqual compares two tokens in constant time.
func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
