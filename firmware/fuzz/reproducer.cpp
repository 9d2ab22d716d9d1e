// Runs a fuzz target's LLVMFuzzerTestOneInput over files without libFuzzer:
// each argument is a file or a directory of files (not recursive). Used in
// `make test` to replay the seed corpus under the sanitizers, and to replay
// a crash file found by `make fuzz`.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool RunFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) {
    perror(path.c_str());
    return false;
  }
  std::vector<uint8_t> buf;
  uint8_t chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf.insert(buf.end(), chunk, chunk + n);
  fclose(f);
  // A heap copy of exactly the input's size, so ASan sees overreads.
  std::vector<uint8_t> exact(buf);
  LLVMFuzzerTestOneInput(exact.empty() ? nullptr : exact.data(), exact.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (!RunFile(argv[i])) return 1;
      ++files;
      continue;
    }
    DIR* d = opendir(argv[i]);
    if (d == nullptr) {
      perror(argv[i]);
      return 1;
    }
    while (dirent* e = readdir(d)) {
      std::string p = std::string(argv[i]) + "/" + e->d_name;
      if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (!RunFile(p)) return 1;
      ++files;
    }
    closedir(d);
  }
  if (files == 0) {
    fprintf(stderr, "reproducer: no input files\n");
    return 1;
  }
  printf("  %d inputs replayed\n", files);
  return 0;
}
