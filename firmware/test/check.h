// A minimal test harness: TEST(name) registers a case, CHECK* record
// failures without stopping the case. main() runs every case and ends with
// the line "N passed, N failed" that CI recognises.
#ifndef ISOBOX_FW_TEST_CHECK_H
#define ISOBOX_FW_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include <string>

namespace check {

struct Case {
  const char* name;
  void (*fn)();
  Case* next;
};

Case*& Head();
int& Failures();  // failures in the running case

struct Register {
  Register(Case* c) {
    c->next = Head();
    Head() = c;
  }
};

}  // namespace check

#define TEST(name)                                            \
  static void test_##name();                                  \
  static check::Case case_##name{#name, test_##name, nullptr}; \
  static check::Register reg_##name(&case_##name);            \
  static void test_##name()

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      ++check::Failures();                                                  \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define CHECK_EQ(a, b)                                                          \
  do {                                                                          \
    long long va_ = static_cast<long long>(a), vb_ = static_cast<long long>(b); \
    if (va_ != vb_) {                                                           \
      ++check::Failures();                                                      \
      fprintf(stderr, "  %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b, va_, vb_); \
    }                                                                           \
  } while (0)

#define CHECK_STR(a, b)                                                                   \
  do {                                                                                    \
    std::string sa_ = (a), sb_ = (b); /* copies: an argument may be a temporary's c_str() */ \
    if (sa_ != sb_) {                                                                     \
      ++check::Failures();                                                                \
      fprintf(stderr, "  %s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, sa_.c_str(), sb_.c_str()); \
    }                                                                                     \
  } while (0)

#endif  // ISOBOX_FW_TEST_CHECK_H
