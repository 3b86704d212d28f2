// safetensors: read and write the Hugging Face tensor format, with strict validation.
//
// File = u64 little-endian N, N bytes of JSON header, then the data section. The header maps
// names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data section)
// plus an optional "__metadata__" string map. The reader rejects anything malformed: a
// header larger than 100 MB or than the file, bad JSON, unknown dtypes, sizes that do not
// match numel * itemsize, and ranges that do not tile the data section exactly. Writes are
// atomic: a temporary file in the same folder, flushed, then renamed over the target.
#pragma once
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "ligm/core/file.hpp"
#include "ligm/ops/copy.hpp"

namespace ligm::io {

struct RawTensor {
  std::string dtype;  // "F64", "F32", "I64", "BOOL", ...
  Shape shape;
  std::vector<unsigned char> data;  // little-endian, row-major
};

struct SafetensorsFile {
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, std::string> metadata;
};

namespace st_detail {
inline std::size_t dtype_size(std::string_view d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}
constexpr std::uint64_t kMaxHeader = 100'000'000;
}  // namespace st_detail

inline SafetensorsFile parse_safetensors(const std::vector<unsigned char>& bytes,
                                         std::string_view source = "buffer") {
  const char* op = "load_safetensors";
  check(bytes.size() >= 8, op, source, ": file of ", bytes.size(), " bytes is too short for a header");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  check(n <= st_detail::kMaxHeader, op, source, ": header of ", n, " bytes exceeds the 100 MB limit");
  check(n <= bytes.size() - 8, op, source, ": header of ", n, " bytes runs past the end of the ",
        bytes.size(), "-byte file (truncated?)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const std::exception& e) {
    fail(op, source, ": the header is not valid JSON (", e.what(), ")");
  }
  check(header.is_object(), op, source, ": the header must be a JSON object");
  const std::uint64_t data_size = bytes.size() - 8 - n;
  const unsigned char* data = bytes.data() + 8 + n;
  SafetensorsFile out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      check(v.is_object(), op, source, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        check(m.value().is_string(), op, source, ": __metadata__[\"", m.key(), "\"] is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    check(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
          op, source, ": tensor \"", name, "\" needs dtype, shape and data_offsets");
    check(v["dtype"].is_string(), op, source, ": tensor \"", name, "\" has a non-string dtype");
    RawTensor t;
    t.dtype = v["dtype"].get<std::string>();
    const std::size_t item = st_detail::dtype_size(t.dtype);
    check(item != 0, op, source, ": tensor \"", name, "\" has unknown dtype ", t.dtype);
    check(v["shape"].is_array(), op, source, ": tensor \"", name, "\" has a non-array shape");
    std::uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      check(d.is_number_unsigned(), op, source, ": tensor \"", name, "\" has a bad dim in its shape");
      const auto dim = d.get<std::uint64_t>();
      check(dim < (1ull << 40) && (dim == 0 || numel <= (1ull << 62) / dim), op, source,
            ": tensor \"", name, "\" has an absurd shape");
      numel *= dim;
      t.shape.push_back(static_cast<std::int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    check(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
          op, source, ": tensor \"", name, "\" needs data_offsets [begin, end]");
    const auto b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
    check(b <= e && e <= data_size, op, source, ": tensor \"", name, "\" has data_offsets [", b,
          ", ", e, "] outside the ", data_size, "-byte data section");
    check(e - b == numel * item, op, source, ": tensor \"", name, "\" of shape ", t.shape, " and dtype ",
          t.dtype, " needs ", numel * item, " bytes, has ", e - b);
    t.data.assign(data + b, data + e);
    ranges.push_back({b, e});
    out.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  std::uint64_t at = 0;
  for (auto [b, e] : ranges) {
    check(b == at, op, source, ": tensor data ranges overlap or leave a gap at byte ", at);
    at = e;
  }
  check(at == data_size, op, source, ": ", data_size - at, " bytes after the last tensor are not described");
  return out;
}

// The file helpers live in core/file.hpp (data/ reads files too); io:: names them as before.
using ligm::read_file;
using ligm::write_file_atomic;

inline SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path, "load_safetensors"), path);
}

// Tensors ordered by dtype size (largest first) then name; header padded to 8 bytes.
inline std::vector<unsigned char> serialize_safetensors(const SafetensorsFile& file) {
  std::vector<const std::pair<const std::string, RawTensor>*> order;
  for (const auto& kv : file.tensors) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](auto a, auto b) {
    return st_detail::dtype_size(a->second.dtype) > st_detail::dtype_size(b->second.dtype);
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::uint64_t at = 0;
  for (auto kv : order) {
    const auto& t = kv->second;
    check(st_detail::dtype_size(t.dtype) != 0, "save_safetensors", "unknown dtype ", t.dtype,
          " for tensor \"", kv->first, "\"");
    check(t.data.size() == static_cast<std::size_t>(numel_of(t.shape)) * st_detail::dtype_size(t.dtype),
          "save_safetensors", "tensor \"", kv->first, "\" has ", t.data.size(), " bytes for shape ", t.shape);
    header[kv->first] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {at, at + t.data.size()}}};
    at += t.data.size();
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::vector<unsigned char> out;
  out.reserve(8 + h.size() + at);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<unsigned char>((std::uint64_t(h.size()) >> (8 * i)) & 0xFF));
  out.insert(out.end(), h.begin(), h.end());
  for (auto kv : order) out.insert(out.end(), kv->second.data.begin(), kv->second.data.end());
  return out;
}

inline void save_safetensors(const SafetensorsFile& file, const std::string& path) {
  write_file_atomic(path, serialize_safetensors(file), "save_safetensors");
}

template <class T>
constexpr const char* safetensors_dtype() {
  if constexpr (std::is_same_v<T, float>) return "F32";
  else if constexpr (std::is_same_v<T, double>) return "F64";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
  else return "BOOL";
}

template <class T>
RawTensor to_raw(const Tensor<T>& t) {
  RawTensor r{safetensors_dtype<T>(), t.shape(), {}};
  auto host = t.detach().contiguous().to(Device::cpu());
  const auto* p = reinterpret_cast<const unsigned char*>(host.data_ptr());
  r.data.assign(p, p + host.numel() * sizeof(T));
  return r;
}

// Converts a stored tensor to Tensor<T>, casting from F64/F32/BF16/I64/I32/U8/BOOL. A float
// that no integer T can hold (NaN, +-inf, beyond T's range) is an error, not a cast: the cast
// would be undefined behaviour.
template <class T>
Tensor<T> from_raw(const RawTensor& r, Device device = Device::cpu()) {
  const auto n = numel_of(r.shape);
  const std::size_t item = st_detail::dtype_size(r.dtype);
  check(item != 0 && r.data.size() == static_cast<std::size_t>(n) * item, "from_raw", "tensor of dtype ",
        r.dtype, " and shape ", r.shape, " holds ", r.data.size(), " bytes");
  std::vector<T> v(static_cast<std::size_t>(n));
  auto cast = [&](auto s) {
    using S = decltype(s);
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T> && std::is_floating_point_v<S>) {
      constexpr S lo = static_cast<S>(std::numeric_limits<T>::min());  // -2^63: exact in float and double
      check(s >= lo && s < -lo, "from_raw", "value ", s, " of a ", r.dtype, " tensor does not fit in ",
            dtype_name<T>());
    }
    return static_cast<T>(s);
  };
  auto convert = [&](auto tag) {
    using S = decltype(tag);
    for (std::int64_t i = 0; i < n; ++i) {
      S s;
      std::memcpy(&s, r.data.data() + i * sizeof(S), sizeof(S));
      v[i] = cast(s);
    }
  };
  if (r.dtype == "F64") convert(double{});
  else if (r.dtype == "F32") convert(float{});
  else if (r.dtype == "I64") convert(std::int64_t{});
  else if (r.dtype == "I32") convert(std::int32_t{});
  else if (r.dtype == "U8" || r.dtype == "BOOL") convert(std::uint8_t{});
  else if (r.dtype == "BF16") {
    for (std::int64_t i = 0; i < n; ++i) {  // bfloat16: the upper half of a float32
      std::uint16_t b;
      std::memcpy(&b, r.data.data() + i * 2, 2);
      const std::uint32_t bits = std::uint32_t(b) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      v[i] = cast(f);
    }
  } else fail("from_raw", "cannot convert dtype ", r.dtype, " to ", dtype_name<T>());
  if constexpr (std::is_same_v<T, bool>) {
    auto t = Tensor<bool>::empty(r.shape, Device::cpu());
    for (std::int64_t i = 0; i < n; ++i) t.data_ptr()[i] = v[i];
    return t.to(device);
  } else {
    return tensor<T>(v, r.shape, device);
  }
}

}  // namespace ligm::io
