// Package docs holds no code: its test checks the repository's Markdown
// documents, so that every relative link names a file that exists inside
// the repository and every Russian page links to its English twin and back.
package docs
