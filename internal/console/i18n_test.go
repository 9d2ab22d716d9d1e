package console

import (
	"io/fs"
	"regexp"
	"testing"
)

// Both catalogues have every key, and every key a template names exists.
func TestCataloguesComplete(t *testing.T) {
	cat, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	for k := range cat["en"] {
		if cat["ru"][k] == "" {
			t.Errorf("ru lacks %s", k)
		}
	}
	for k := range cat["ru"] {
		if cat["en"][k] == "" {
			t.Errorf("en lacks %s", k)
		}
	}
	used := regexp.MustCompile(`\.Tf? "([a-z.]+)"`)
	fs.WalkDir(templateFS, ".", func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		b, _ := templateFS.ReadFile(path)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			if cat["en"][m[1]] == "" {
				t.Errorf("%s uses %s, in no catalogue", path, m[1])
			}
		}
		return nil
	})
}
