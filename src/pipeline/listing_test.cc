#include <gtest/gtest.h>

#include "orchard/pipeline.h"

namespace orchard {
namespace {

TEST(Listing, AcceptsImageExtensionsCaseInsensitively) {
  for (const char* key :
       {"a.jpg", "A/B.JPG", "x.Jpeg", "p.png", "w.webp", "b.BMP", "dir.jpg/x.png"}) {
    EXPECT_TRUE(HasImageExtension(key)) << key;
  }
  for (const char* key :
       {"README.md", "a.jpg.txt", "noext", "dir.jpg/noext", ".jpg/x", "x.gif", "x.tiff"}) {
    EXPECT_FALSE(HasImageExtension(key)) << key;
  }
}

TEST(Listing, LabelIsTheParentFolderName) {
  EXPECT_EQ(LabelOf("Training/Cherry 3/r0_1.jpg"), "Cherry 3");
  EXPECT_EQ(LabelOf("Apple/1.jpg"), "Apple");
  EXPECT_EQ(LabelOf("top.jpg"), "");
}

}  // namespace
}  // namespace orchard
