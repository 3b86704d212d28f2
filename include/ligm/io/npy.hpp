// NumPy .npy files (format versions 1, 2 and 3): save_npy writes a tensor as NumPy would
// (little-endian, C order); load_npy reads float64/float32/int64/int32/uint8/bool arrays in
// C or Fortran order and converts to the requested type (parse_npy the same from bytes in
// memory). A malformed, truncated or hostile file is rejected with a ligm::Error that names it
// and what is wrong (tests/fuzz fuzzes the parser).
//
//   io::save_npy(x, "x.npy");                  // np.load("x.npy") in Python
//   auto y = io::load_npy<float>("y.npy");     // np.save("y.npy", array) in Python
#pragma once
#include <cstring>
#include <string>
#include <vector>

#include "ligm/io/safetensors.hpp"

namespace ligm::io {
namespace npy_detail {
constexpr std::size_t kMaxHeader = 1 << 20;

template <class T>
constexpr const char* descr() {
  if constexpr (std::is_same_v<T, float>) return "<f4";
  else if constexpr (std::is_same_v<T, double>) return "<f8";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "<i8";
  else return "|b1";
}

// The value of 'key' in the header dict, as written between its ': ' and the next ',' or '}'
// (or the matching ')' for the shape tuple).
inline std::string field(const std::string& h, const std::string& key, std::string_view path) {
  const auto k = h.find("'" + key + "'");
  check(k != std::string::npos, "load_npy", path, ": header has no '", key, "': ", h);
  auto at = h.find(':', k);
  check(at != std::string::npos, "load_npy", path, ": malformed header: ", h);
  ++at;
  while (at < h.size() && h[at] == ' ') ++at;
  const auto end = h[at] == '(' ? h.find(')', at) + 1 : h.find_first_of(",}", at);
  check(end != std::string::npos && end > at, "load_npy", path, ": malformed header: ", h);
  return h.substr(at, end - at);
}
}  // namespace npy_detail

template <class T>
void save_npy(const Tensor<T>& t, const std::string& path) {
  std::string shape = "(";
  for (auto d : t.shape()) shape += std::to_string(d) + ", ";
  if (t.dim() > 1) shape.erase(shape.size() - 2);  // (3, 4) but (3,) and ()
  else if (t.dim() == 1) shape.erase(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + npy_detail::descr<T>() + "', 'fortran_order': False, 'shape': " +
                       shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n', padded with spaces to 64 bytes.
  const std::size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header.push_back('\n');
  std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<unsigned char>(header.size() & 0xFF));
  out.push_back(static_cast<unsigned char>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const auto raw = to_raw(t);
  out.insert(out.end(), raw.data.begin(), raw.data.end());
  write_file_atomic(path, out, "save_npy");
}

// The array in `bytes` (the contents of a .npy file); `path` names it in errors.
template <class T>
Tensor<T> parse_npy(const std::vector<unsigned char>& bytes, std::string_view path = "buffer") {
  const char* op = "load_npy";
  check(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, op, path, " is not a .npy file");
  const int major = bytes[6];
  check(major >= 1 && major <= 3, op, path, ": unsupported .npy version ", major);
  const std::size_t len_bytes = major == 1 ? 2 : 4;
  check(bytes.size() >= 8 + len_bytes, op, path, ": truncated header");
  std::size_t hlen = 0;
  for (std::size_t i = 0; i < len_bytes; ++i) hlen |= std::size_t(bytes[8 + i]) << (8 * i);
  const std::size_t data_at = 8 + len_bytes + hlen;
  check(hlen <= npy_detail::kMaxHeader && data_at <= bytes.size(), op, path, ": header of ", hlen,
        " bytes does not fit in the file of ", bytes.size(), " bytes");
  const std::string h(bytes.begin() + std::ptrdiff_t(8 + len_bytes), bytes.begin() + std::ptrdiff_t(data_at));

  std::string descr = npy_detail::field(h, "descr", path);
  check(descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"'), op, path, ": bad descr ", descr);
  descr = descr.substr(1, descr.size() - 2);
  const std::string fortran = npy_detail::field(h, "fortran_order", path);
  check(fortran == "False" || fortran == "True", op, path, ": bad fortran_order ", fortran);
  const std::string shape_text = npy_detail::field(h, "shape", path);
  Shape shape;
  std::int64_t numel = 1;
  {
    std::string num;
    for (char c : shape_text.substr(1)) {
      if (c >= '0' && c <= '9') {
        num.push_back(c);
        check(num.size() <= 15, op, path, ": dimension too large in shape ", shape_text);
      } else if (c == ',' || c == ')') {
        if (!num.empty()) {
          shape.push_back(std::stoll(num));
          check(shape.back() == 0 || numel <= (std::int64_t(1) << 40) / shape.back(), op, path, ": shape ",
                shape_text, " is too large");
          numel *= shape.back();
          num.clear();
        }
      } else {
        check(c == ' ', op, path, ": bad character in shape ", shape_text);
      }
    }
  }
  // dtype: byte order mark then kind and size.
  static const std::map<std::string, std::pair<std::string, std::size_t>> kinds = {
      {"<f8", {"F64", 8}}, {"<f4", {"F32", 4}}, {"<i8", {"I64", 8}}, {"<i4", {"I32", 4}},
      {"|u1", {"U8", 1}},  {"<u1", {"U8", 1}},  {"|b1", {"BOOL", 1}}, {"<b1", {"BOOL", 1}}};
  auto kind = kinds.find(descr);
  check(kind != kinds.end(), op, path, ": dtype ", descr,
        " is not supported (float64, float32, int64, int32, uint8, bool; little-endian)");
  const std::size_t want = std::size_t(numel) * kind->second.second;
  check(bytes.size() - data_at == want, op, path, ": shape ", shape_text, " of ", descr, " needs ", want,
        " bytes of data, the file holds ", bytes.size() - data_at);
  RawTensor raw{kind->second.first, shape, {bytes.begin() + std::ptrdiff_t(data_at), bytes.end()}};
  if (fortran == "False" || shape.size() < 2) return from_raw<T>(raw);
  // Fortran order: the data is the C-order array of the reversed shape, transposed.
  Shape reversed(shape.rbegin(), shape.rend());
  raw.shape = reversed;
  Dims perm;
  for (std::int64_t d = std::int64_t(shape.size()) - 1; d >= 0; --d) perm.push_back(d);
  return from_raw<T>(raw).permute(perm).contiguous();
}

template <class T>
Tensor<T> load_npy(const std::string& path) {
  return parse_npy<T>(read_file(path, "load_npy"), path);
}

}  // namespace ligm::io
