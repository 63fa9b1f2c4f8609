// EXPECT_API_ERROR(result, CODE, params...): the call failed with exactly this XenAPI error.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xapid/api/errors.hpp"

#define XAPID_EXPECT_API_ERROR(call, code_name, ...)                                                         \
  do {                                                                                                \
    auto&& xapid_r_ = (call);                                                                         \
    ASSERT_FALSE(xapid_r_.ok()) << #call " succeeded";                                                \
    EXPECT_EQ(::xapid::api::to_string(xapid_r_.error().code), ::xapid::api::to_string(::xapid::api::error_code::code_name)); \
    EXPECT_EQ(xapid_r_.error().params, (std::vector<std::string>{__VA_ARGS__}));                     \
  } while (0)

#define EXPECT_API_ERROR XAPID_EXPECT_API_ERROR
