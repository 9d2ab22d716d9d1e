package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// dsnForms is what CheckDSN accepts, for error messages.
const dsnForms = `empty (the embedded SQLite database), sqlite:PATH (an SQLite file), or mysql://user:password@tcp(host:3306)/dbname (MariaDB/MySQL)`

// CheckDSN says whether dsn is a database isobox can open: empty (the
// embedded default), "sqlite:PATH" (or "sqlite://PATH"), or "mysql://" in
// front of a go-sql-driver DSN. Anything else — a bare driver DSN, another
// engine's URL, a file name — is refused with the accepted forms, rather
// than taken as the name of a new SQLite file.
func CheckDSN(dsn string) error {
	switch {
	case dsn == "":
		return nil
	case strings.HasPrefix(dsn, "mysql://"):
		if _, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://")); err != nil {
			return fmt.Errorf("%q is not a MariaDB/MySQL DSN (%v); want %s", RedactDSN(dsn), err, dsnForms)
		}
		return nil
	case strings.HasPrefix(dsn, "sqlite:"):
		if sqlitePath(dsn) == "" {
			return errors.New("sqlite: needs a file path, e.g. sqlite:/var/lib/isobox/authprovider.db")
		}
		return nil
	case strings.Contains(dsn, "@tcp(") || strings.Contains(dsn, "@unix("):
		return fmt.Errorf("%q looks like a MariaDB/MySQL DSN without its scheme: write mysql://%s (accepted: %s)", RedactDSN(dsn), RedactDSN(dsn), dsnForms)
	default:
		return fmt.Errorf("%q is not a database isobox can use; want %s", RedactDSN(dsn), dsnForms)
	}
}

// sqlitePath is the file of a "sqlite:PATH" or "sqlite://PATH" DSN.
func sqlitePath(dsn string) string {
	if p, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		return p
	}
	return strings.TrimPrefix(dsn, "sqlite:")
}

// RedactDSN returns dsn with its password, if any, replaced by REDACTED:
// for logs, --print-config and error messages.
func RedactDSN(dsn string) string {
	rest, scheme := dsn, ""
	if r, ok := strings.CutPrefix(dsn, "mysql://"); ok {
		rest, scheme = r, "mysql://"
	}
	// [user[:password]@][net[(addr)]]/dbname: the credentials end at the
	// last '@' before the last '/'.
	slash := strings.LastIndex(rest, "/")
	if slash < 0 {
		slash = len(rest)
	}
	at := strings.LastIndex(rest[:slash], "@")
	if at < 0 {
		return dsn
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return dsn
	}
	return scheme + user + ":REDACTED" + rest[at:]
}

// Describe names the database of dsn for a log line, without its password:
// "sqlite /path/file.db" or "mysql user@tcp(host:3306)/dbname".
func Describe(dsn string) string {
	if strings.HasPrefix(dsn, "mysql://") {
		if cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql://")); err == nil {
			return fmt.Sprintf("mysql %s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName)
		}
		return "mysql " + RedactDSN(dsn)
	}
	return "sqlite " + sqlitePath(dsn)
}
