package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// link matches a Markdown inline link or image target: ](target) or
// ](target "title").
var link = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// markdown lists the repository's tracked Markdown files, relative to root.
func markdown(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "*.md").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		// Test data and third-party fixtures are not documents.
		if strings.Contains(f, "/testdata/") || strings.Contains(f, "node_modules/") {
			continue
		}
		files = append(files, f)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d Markdown files under %s", len(files), root)
	}
	return files
}

func TestRelativeLinksStayInsideTheRepositoryAndResolve(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range markdown(t, root) {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		inFence := false
		for n, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
					continue
				}
				target, _, _ = strings.Cut(target, "#")
				abs := filepath.Clean(filepath.Join(root, filepath.Dir(f), target))
				rel, err := filepath.Rel(root, abs)
				if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					t.Errorf("%s:%d: link %q points outside the repository", f, n+1, m[1])
					continue
				}
				if _, err := os.Stat(abs); err != nil {
					t.Errorf("%s:%d: link %q: %v", f, n+1, m[1], err)
				}
				checked++
			}
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d relative links", checked)
	}
}

func TestRussianPagesAndTheirEnglishTwinsLinkEachOther(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for _, ru := range markdown(t, root) {
		if !strings.HasSuffix(ru, ".ru.md") {
			continue
		}
		en := strings.TrimSuffix(ru, ".ru.md") + ".md"
		ruText, err := os.ReadFile(filepath.Join(root, ru))
		if err != nil {
			t.Fatal(err)
		}
		enText, err := os.ReadFile(filepath.Join(root, en))
		if err != nil {
			t.Errorf("%s has no English twin %s", ru, en)
			continue
		}
		if !strings.Contains(string(ruText), "]("+filepath.Base(en)+")") {
			t.Errorf("%s does not link to %s", ru, filepath.Base(en))
		}
		if !strings.Contains(string(enText), "]("+filepath.Base(ru)+")") {
			t.Errorf("%s does not link to %s", en, filepath.Base(ru))
		}
		pairs++
	}
	if pairs < 8 {
		t.Fatalf("found only %d Russian pages", pairs)
	}
}
