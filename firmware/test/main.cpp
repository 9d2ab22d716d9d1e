#include <stdio.h>

#include "check.h"

namespace check {
Case*& Head() {
  static Case* head = nullptr;
  return head;
}
int& Failures() {
  static int n = 0;
  return n;
}
}  // namespace check

int main() {
  // Registration prepends; reverse to run in file order.
  check::Case* rev = nullptr;
  for (check::Case* c = check::Head(); c != nullptr;) {
    check::Case* next = c->next;
    c->next = rev;
    rev = c;
    c = next;
  }
  int passed = 0, failed = 0;
  for (check::Case* c = rev; c != nullptr; c = c->next) {
    check::Failures() = 0;
    c->fn();
    if (check::Failures() == 0) {
      ++passed;
      printf("ok   %s\n", c->name);
    } else {
      ++failed;
      printf("FAIL %s\n", c->name);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
