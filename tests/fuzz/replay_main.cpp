// tests/fuzz/replay_main.cpp: runs the fuzz target without libFuzzer.
//
//   chan_fuzz_replay [--random N] PATH...
//
// Feeds every file named, and every file in every directory named (the seed
// corpus, or a crash input libFuzzer saved), to LLVMFuzzerTestOneInput once,
// then N pseudo-random inputs from a fixed seed, so that every build runs the
// model checks. A violation aborts, failing the test.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}

// run_path: a file, or every regular file in a directory (sorted, so runs
// are repeatable). Returns how many inputs ran.
int run_path(const std::filesystem::path& path) {
  if (!std::filesystem::is_directory(path)) {
    run_file(path);
    return 1;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) run_file(file);
  return static_cast<int>(files.size());
}

int run_random(int count) {
  std::mt19937 random(20261127);
  for (int i = 0; i < count; ++i) {
    std::vector<std::uint8_t> bytes(random() % 160);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
      inputs += run_random(std::atoi(argv[++i]));
    } else {
      inputs += run_path(argv[i]);
    }
  }
  if (inputs == 0) {
    std::fprintf(stderr, "chan_fuzz_replay: no input (the corpus directory is empty?)\n");
    return 1;
  }
  std::printf("chan_fuzz_replay: %d inputs, no violation\n", inputs);
  return 0;
}
