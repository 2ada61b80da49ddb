// Runs a libFuzzer target's LLVMFuzzerTestOneInput over saved inputs, without
// libFuzzer, so that the corpus is replayed by every compiler and in every
// build (CI runs it under ASan/UBSan through ctest).
//
//   fuzz_<name>_regress [FILE_OR_DIR...]
//
// Runs every file under the target's committed corpus directory (compiled in
// as VANE_FUZZ_CORPUS_DIR) and then every file or directory given on the
// command line (e.g. a crash-* artifact from a fuzzing run). Exits non-zero
// if a path cannot be read or if no input at all was run; a failing input
// aborts (sanitizer report or the target's own check), and the last "Running:"
// line names it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a fuzz target, as with libFuzzer.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

// Appends the regular files at `path` (the file itself, or the files below a
// directory, in a stable order). Returns false if the path does not exist.
bool collect(const fs::path& path, std::vector<fs::path>* files) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    files->push_back(path);
    return true;
  }
  if (!fs::is_directory(path, ec)) {
    std::fprintf(stderr, "error: %s: not a file or directory\n", path.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) found.push_back(it->path());
  }
  if (ec) {
    std::fprintf(stderr, "error: %s: %s\n", path.c_str(), ec.message().c_str());
    return false;
  }
  std::sort(found.begin(), found.end());
  files->insert(files->end(), found.begin(), found.end());
  return true;
}

bool runFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", path.c_str());
    return false;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A buffer of exactly the input's size, so that ASan reports any read past
  // its end (as libFuzzer's own copy would).
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[bytes.size()]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  std::fprintf(stderr, "Running: %s (%zu bytes)\n", path.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<fs::path> files;
  bool ok = true;
#ifdef VANE_FUZZ_CORPUS_DIR
  ok = collect(VANE_FUZZ_CORPUS_DIR, &files) && ok;
#endif
  for (int i = 1; i < argc; ++i) ok = collect(argv[i], &files) && ok;

  std::size_t ran = 0;
  for (const fs::path& file : files) {
    if (runFile(file)) {
      ++ran;
    } else {
      ok = false;
    }
  }
  std::fprintf(stderr, "Ran %zu inputs\n", ran);
  if (ran == 0) {
    std::fprintf(stderr, "error: no inputs\n");
    return 1;
  }
  return ok ? 0 : 1;
}
