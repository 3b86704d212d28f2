// Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/seed-*): small valid
// files of every format and variant the readers accept, made by ligm's own writers (and by
// hand where ligm writes only one variant: Fortran order, .npy version 2, concatenated gzip
// members, bfloat16). tools/fuzz --seeds runs it; the files are committed.
//
//   make_seeds <corpus-dir>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "targets.hpp"

using namespace ligm;
namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

static fs::path root;

static void put(const std::string& target, const std::string& name, const Bytes& bytes) {
  fs::create_directories(root / target);
  write_file_atomic((root / target / ("seed-" + name)).string(), bytes, "make_seeds");
}

static Bytes gzip(const Bytes& plain) {
  const std::string tmp = (root / "tmp.gz").string();
  gzFile f = gzopen(tmp.c_str(), "wb9");
  gzwrite(f, plain.data(), static_cast<unsigned>(plain.size()));
  gzclose(f);
  auto bytes = read_file(tmp, "make_seeds");
  fs::remove(tmp);
  return bytes;
}

static Bytes idx_file(const std::vector<std::uint32_t>& dims, unsigned char start) {
  Bytes b = {0, 0, 8, static_cast<unsigned char>(dims.size())};
  std::size_t n = 1;
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
    n *= d;
  }
  for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(start + 37 * i));
  return b;
}

// A .npy file by hand: version 1 or 2 header, any dict text.
static Bytes npy_file(int version, const std::string& dict, const Bytes& data) {
  const std::size_t len_bytes = version == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + len_bytes + header.size() + 1) % 64) header.push_back(' ');
  header.push_back('\n');
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(version), 0};
  for (std::size_t i = 0; i < len_bytes; ++i) b.push_back(static_cast<unsigned char>(header.size() >> (8 * i)));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

static Bytes stb_out(int (*write)(stbi_write_func*, void*, int, int, int, const void*, int), int w, int h,
                     int c, const std::vector<unsigned char>& px, int extra) {
  Bytes out;
  write([](void* ctx, void* data, int n) {
    auto* o = static_cast<Bytes*>(ctx);
    o->insert(o->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + n);
  }, &out, w, h, c, px.data(), extra);
  return out;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds <corpus-dir>\n");
    return 2;
  }
  root = argv[1];
  manual_seed(7);

  // safetensors: every dtype the reader converts, metadata, an empty tensor.
  {
    io::SafetensorsFile f;
    f.tensors["w"] = io::to_raw(randn<float>({3, 4}));
    f.tensors["step"] = io::to_raw(tensor<std::int64_t>({1, -2}, {2}));
    f.tensors["d"] = io::to_raw(tensor<double>({0.5, -1.25, 3.0}, {3}));
    f.tensors["m"] = io::to_raw(tensor<bool>({true, false, true, true}, {2, 2}));
    f.tensors["e"] = io::to_raw(Tensor<float>::empty({0, 3}));
    f.metadata["format"] = "pt";
    put("safetensors", "dtypes", io::serialize_safetensors(f));
    io::SafetensorsFile g;
    g.tensors["bf"] = {"BF16", {2, 2}, {0x80, 0x3f, 0x00, 0xc0, 0x49, 0x40, 0x00, 0x00}};  // 1, -2, 3.140625, 0
    g.tensors["i"] = {"I32", {2}, {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}};
    g.tensors["u"] = {"U8", {3}, {0, 128, 255}};
    put("safetensors", "bf16-i32-u8", io::serialize_safetensors(g));
  }

  // .npy: ligm's writer for each type, then by hand: Fortran order, version 2, int32, uint8, a scalar.
  {
    auto save = [](const std::string& name, const auto& t) {
      const std::string tmp = (root / "tmp.npy").string();
      io::save_npy(t, tmp);
      put("npy", name, read_file(tmp, "make_seeds"));
      fs::remove(tmp);
    };
    save("f4", randn<float>({2, 3}));
    save("f8", randn<double>({4}));
    save("i8", tensor<std::int64_t>({5, -6, 7}, {3}));
    save("b1", tensor<bool>({true, false}, {2}));
    const Bytes six_f4 = io::to_raw(tensor<float>({1, 2, 3, 4, 5, 6}, {6})).data;
    put("npy", "fortran", npy_file(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", six_f4));
    put("npy", "v2", npy_file(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", six_f4));
    put("npy", "i4", npy_file(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", {1, 0, 0, 0, 254, 255, 255, 255}));
    put("npy", "u1", npy_file(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", {0, 7, 128, 255}));
    put("npy", "scalar", npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                                  io::to_raw(scalar_tensor<double>(2.5)).data));
  }

  // IDX: images and labels, plain and gzip (one member and two).
  {
    const Bytes images = idx_file({2, 3, 4}, 5), labels = idx_file({5}, 1);
    put("idx", "images", images);
    put("idx", "labels", labels);
    put("idx", "images.gz", gzip(images));
    Bytes two = gzip(Bytes(images.begin(), images.begin() + 10));
    const Bytes rest = gzip(Bytes(images.begin() + 10, images.end()));
    two.insert(two.end(), rest.begin(), rest.end());
    put("idx", "two-members.gz", two);
  }

  // A checkpoint of the fuzz target's own model and optimizer after one step.
  {
    nn::Sequential model(nn::Linear(4, 3), nn::BatchNorm1d(3));
    optim::AdamW opt(model.parameters());
    model(randn<float>({5, 4})).pow(2.0).sum().backward();
    opt.step();
    io::Checkpoint<float> c{model.state_dict(), opt.state_dict(), {{"step", "1"}}};
    c.capture_rng(default_generator());
    const std::string tmp = (root / "tmp.ckpt").string();
    io::save_checkpoint(c, tmp);
    put("checkpoint", "adamw", read_file(tmp, "make_seeds"));
    fs::remove(tmp);
  }

  // Adapters of the fuzz target's own model, LoRA and DoRA (the DoRA file has the magnitudes
  // too), with non-zero B so that a merge changes the weights.
  for (auto method : {fuzz::lora::Method::LoRA, fuzz::lora::Method::DoRA}) {
    auto model = fuzz::adapter_model(method);
    for (auto& p : fuzz::lora::adapter_parameters(model)) {
      NoGradGuard no_grad;
      p.add_(randn<float>(p.shape()) * 0.1f);
    }
    const std::string tmp = (root / "tmp.safetensors").string();
    fuzz::lora::save_adapter(model, tmp);
    put("adapter", fuzz::lora::method_name(method), read_file(tmp, "make_seeds"));
    fs::remove(tmp);
  }

  // Images: PNG grey / grey + alpha / RGB / RGBA, BMP, 5 x 3 pixels (load_image reads no JPEG).
  {
    std::vector<unsigned char> px(5 * 3 * 4);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<unsigned char>(17 * i);
    for (int c : {1, 2, 3, 4}) put("image", "png" + std::to_string(c), stb_out(stbi_write_png_to_func, 5, 3, c, px, 5 * c));
    put("image", "bmp", stb_out([](stbi_write_func* f, void* ctx, int w, int h, int c, const void* d, int) {
      return stbi_write_bmp_to_func(f, ctx, w, h, c, d);
    }, 5, 3, 3, px, 0));
  }
  // ops: one call of each op on a [2, 3, 4, 5] input with arguments 1, 2, ... (the fuzzer
  // mutates from there; ops.hpp reads the bytes).
  for (unsigned char op = 0; op < 40; ++op) {
    Bytes program = {op, 4, 2, 3, 4, 5};
    for (unsigned char a = 4; a < 24; ++a) program.push_back(a);
    put("ops", "op" + std::to_string(op), program);
  }
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
