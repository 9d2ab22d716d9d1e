package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The string catalogues, one JSON object per language (key → text). Both
// must have the same keys (a test checks).
//
//go:embed web/i18n/*.json
var i18nFS embed.FS

// Languages the console speaks; the first is the default.
var Languages = []string{"en", "ru"}

const langCookie = "isobox_console_lang"

// catalogues maps language → key → text.
type catalogues map[string]map[string]string

func loadCatalogues() (catalogues, error) {
	out := catalogues{}
	for _, l := range Languages {
		b, err := i18nFS.ReadFile("web/i18n/" + l + ".json")
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("console: catalogue %s: %w", l, err)
		}
		out[l] = m
	}
	return out, nil
}

// text returns key in lang, the English text when lang lacks it, or the
// key itself (visible, so a missing string is noticed).
func (c catalogues) text(lang, key string) string {
	if s, ok := c[lang][key]; ok {
		return s
	}
	if s, ok := c["en"][key]; ok {
		return s
	}
	return key
}

// language is the cookie's choice, else the first supported language of
// Accept-Language, else English.
func language(r *http.Request) string {
	if ck, err := r.Cookie(langCookie); err == nil {
		for _, l := range Languages {
			if ck.Value == l {
				return l
			}
		}
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		for _, l := range Languages {
			if tag == l || strings.HasPrefix(tag, l+"-") {
				return l
			}
		}
	}
	return Languages[0]
}
