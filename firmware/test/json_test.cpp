#include <string.h>

#include <string>

#include "../core/json.h"
#include "check.h"

using isobox::json::CopyString;
using isobox::json::Get;
using isobox::json::Kind;
using isobox::json::KindOf;
using isobox::json::Parse;
using isobox::json::Span;
using isobox::json::StringEquals;

static bool P(const char* s) { return Parse(s, strlen(s), nullptr); }

TEST(json_accepts_valid_documents) {
  CHECK(P("{}"));
  CHECK(P(" [ ] "));
  CHECK(P("{\"a\":[1,-2.5e+3,0,true,false,null,\"x\\\"\\u00e9\"],\"b\":{}}"));
  CHECK(P("\"\\/\\b\\f\\n\\r\\t\""));
  CHECK(P("-0.0E1"));
}

TEST(json_rejects_malformed_documents) {
  const char* bad[] = {"",       "{",        "{\"a\"}",  "{\"a\":}", "{\"a\":1,}", "[1,]",
                       "[1 2]",  "01",       "1.",       "-",        "1e",         "tru",
                       "nul",    "\"abc",    "\"\\x\"",  "\"\\u12g4\"", "{a:1}",    "{} {}",
                       "\"\x01\"", "[1]]",   "{\"a\" 1}", "+1",      ".5",         "\"\\"};
  for (const char* s : bad) {
    if (P(s)) fprintf(stderr, "  accepted %s\n", s);
    CHECK(!P(s));
  }
  // A NUL inside the input is not whitespace: the document ends at n.
  CHECK(!Parse("{}\0", 3, nullptr));
  CHECK(!Parse(nullptr, 0, nullptr));
}

TEST(json_depth_is_bounded) {
  std::string ok(ISOBOX_FW_JSON_DEPTH, '['), deep(ISOBOX_FW_JSON_DEPTH + 1, '[');
  ok += std::string(ISOBOX_FW_JSON_DEPTH, ']');
  deep += std::string(ISOBOX_FW_JSON_DEPTH + 1, ']');
  CHECK(P(ok.c_str()));
  CHECK(!P(deep.c_str()));
  // Far beyond the limit: refused without deep recursion.
  std::string huge(100000, '[');
  CHECK(!P(huge.c_str()));
}

TEST(json_get_finds_members_last_wins) {
  const char* doc = " {\"a\":1, \"b\" : {\"c\":\"x\"}, \"a\":\"two\", \"d\":[{\"a\":3}]} ";
  Span root, v, c;
  CHECK(Parse(doc, strlen(doc), &root));
  CHECK(KindOf(root) == Kind::Object);
  CHECK(Get(root, ISOBOX_FSTR("a"), &v));
  CHECK(StringEquals(v, ISOBOX_FSTR("two")));
  CHECK(Get(root, ISOBOX_FSTR("b"), &v));
  CHECK(KindOf(v) == Kind::Object);
  CHECK(Get(v, ISOBOX_FSTR("c"), &c));
  CHECK(StringEquals(c, ISOBOX_FSTR("x")));
  CHECK(!Get(root, ISOBOX_FSTR("c"), &v));  // members of nested objects are not top-level
  CHECK(Get(root, ISOBOX_FSTR("d"), &v));
  CHECK(KindOf(v) == Kind::Array);
  CHECK(!Get(v, ISOBOX_FSTR("a"), &c));  // an array is not an object
  // Escaped keys compare decoded.
  const char* esc = "{\"\\u0064evice\":\"k\"}";
  CHECK(Parse(esc, strlen(esc), &root));
  CHECK(Get(root, ISOBOX_FSTR("device"), &v));
}

TEST(json_copy_string_decodes_escapes) {
  char out[32];
  const char* s = "\"a\\\"b\\\\c\\n\\u00e9\\u20ac\\ud83d\\ude00\"";
  Span v{s, strlen(s)};
  CHECK(CopyString(v, out, sizeof out));
  CHECK_STR(out, "a\"b\\c\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

TEST(json_copy_string_refuses_what_does_not_fit_or_is_unsafe) {
  char out[4];
  const char* s = "\"abcd\"";
  CHECK(!CopyString(Span{s, strlen(s)}, out, sizeof out));  // 4 bytes + NUL > 4
  const char* fits = "\"abc\"";
  CHECK(CopyString(Span{fits, strlen(fits)}, out, sizeof out));
  CHECK_STR(out, "abc");
  char big[16];
  const char* lone = "\"\\ud83d\"";
  CHECK(!CopyString(Span{lone, strlen(lone)}, big, sizeof big));
  const char* low = "\"\\ude00\"";
  CHECK(!CopyString(Span{low, strlen(low)}, big, sizeof big));
  const char* nul = "\"a\\u0000b\"";
  CHECK(!CopyString(Span{nul, strlen(nul)}, big, sizeof big));
  const char* num = "12";
  CHECK(!CopyString(Span{num, strlen(num)}, big, sizeof big));
}
