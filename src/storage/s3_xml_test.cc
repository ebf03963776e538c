// The S3 and STS XML parsers (pure functions), on well-formed responses as AWS, SeaweedFS
// and moto send them, and on malformed and hostile ones.
#include "storage/s3_xml.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace orchard::s3internal {
namespace {

std::string ListXml(const std::string& contents, const std::string& tail = "",
                    bool url_encoded = false) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix>"
      "<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>";
  if (url_encoded) xml += "<EncodingType>url</EncodingType>";
  return xml + tail + contents + "</ListBucketResult>";
}

std::string Entry(const std::string& key, const std::string& size = "7",
                  const std::string& etag = "&quot;abc&quot;") {
  return "<Contents><Key>" + key + "</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>" +
         "<ETag>" + etag + "</ETag><Size>" + size + "</Size><StorageClass>STANDARD</StorageClass>" +
         "</Contents>";
}

void ExpectCorrupt(const Result<ListPage>& page, const std::string& fragment) {
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(page.status().message().find(fragment), std::string::npos) << page.status().message();
}

TEST(ParseListObjectsV2, KeysSizesAndETags) {
  const auto page = ParseListObjectsV2(
      ListXml(Entry("p/a.jpg") + Entry("p/b.jpg", "0", "") + Entry("p/max", "18446744073709551615"),
              "<IsTruncated>false</IsTruncated>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 3u);
  EXPECT_EQ(page->objects[0].key, "p/a.jpg");
  EXPECT_EQ(page->objects[0].size, 7u);
  EXPECT_EQ(page->objects[0].etag, "abc");  // quotes removed
  EXPECT_EQ(page->objects[1].size, 0u);
  EXPECT_EQ(page->objects[1].etag, "");
  EXPECT_EQ(page->objects[2].size, 18446744073709551615ull);
  EXPECT_FALSE(page->is_truncated);
  EXPECT_EQ(page->next_continuation_token, "");
}

TEST(ParseListObjectsV2, UrlEncodedKeysAreDecodedAfterEntities) {
  // S3's encoding-type=url form: spaces as '+', '+' as %2B, UTF-8 percent-encoded; an
  // entity inside is decoded first (&amp; -> &, then %26 stays a literal escape).
  const auto page = ParseListObjectsV2(
      ListXml(Entry("p/a+b%2Bc.jpg") + Entry("p/z%26%3C%3E.jpg") + Entry("p/%C3%BC%20x&amp;.jpg"),
              "", /*url_encoded=*/true));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 3u);
  EXPECT_EQ(page->objects[0].key, "p/a b+c.jpg");
  EXPECT_EQ(page->objects[1].key, "p/z&<>.jpg");
  EXPECT_EQ(page->objects[2].key, "p/\xC3\xBC x&.jpg");
}

TEST(ParseListObjectsV2, PlainKeysAreOnlyEntityDecoded) {
  // What the substring parser's XmlUnescape test covered: named and numeric references.
  const auto page = ParseListObjectsV2(
      ListXml(Entry("p/&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#xE9;&#x1F34E;+%20.jpg") +
              Entry("<![CDATA[p/cdata <raw> & text]]>") + Entry("   ") + Entry("")));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 4u);
  EXPECT_EQ(page->objects[0].key, "p/<>&\"'AB\xC3\xA9\xF0\x9F\x8D\x8E+%20.jpg");
  EXPECT_EQ(page->objects[1].key, "p/cdata <raw> & text");
  EXPECT_EQ(page->objects[2].key, "   ");  // whitespace is a valid key, kept
  EXPECT_EQ(page->objects[3].key, "");
}

TEST(ParseListObjectsV2, ElementNamesMatchExactlyAndIgnoreNamespacePrefixes) {
  // <KeyCount> and <Keys> are not <Key>; attributes and prefixes are allowed.
  const auto page = ParseListObjectsV2(
      "<s3:ListBucketResult xmlns:s3=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<s3:KeyCount>1</s3:KeyCount><s3:Contents><s3:Keys>no</s3:Keys><s3:Key a=\"1\">k</s3:Key>"
      "<s3:Size>3</s3:Size></s3:Contents><s3:IsTruncated>true</s3:IsTruncated>"
      "<s3:NextContinuationToken>t/+=</s3:NextContinuationToken></s3:ListBucketResult>");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "k");
  EXPECT_EQ(page->objects[0].size, 3u);
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_continuation_token, "t/+=");  // never URL-decoded
}

TEST(ParseListObjectsV2, EmptyListing) {
  const auto page = ParseListObjectsV2(
      "<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->objects.empty());
  EXPECT_FALSE(page->is_truncated);
}

TEST(ParseListObjectsV2, RefusesSizesThatAreNotPlainNumbers) {
  EXPECT_TRUE(ParseListObjectsV2(ListXml(Entry("k", " 12\n"))).ok());  // whitespace is fine
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "-1"))), "is negative");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", ""))), "is empty");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "18446744073709551616"))),
                "does not fit in 64 bits");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", std::string(400, '9')))),
                "does not fit in 64 bits");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "1e3"))), "is not a size in bytes");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "+5"))), "is not a size in bytes");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "0x10"))), "is not a size in bytes");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("k", "12 34"))), "is not a size in bytes");
  ExpectCorrupt(ParseListObjectsV2(ListXml("<Contents><Key>k</Key></Contents>")), "no <Size>");
  ExpectCorrupt(ParseListObjectsV2(ListXml("<Contents><Size>1</Size></Contents>")),
                "without <Key>");
  // The message names the key, cut and printable.
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("p/x\x01y", "-3"))), "'p/x?y'");
}

TEST(ParseListObjectsV2, TruncationNeedsAToken) {
  ExpectCorrupt(ParseListObjectsV2(ListXml("", "<IsTruncated>true</IsTruncated>")),
                "without a <NextContinuationToken>");
  ExpectCorrupt(
      ParseListObjectsV2(ListXml("", "<IsTruncated>true</IsTruncated><NextContinuationToken/>")),
      "without a <NextContinuationToken>");
  ExpectCorrupt(ParseListObjectsV2(ListXml("", "<IsTruncated>yes</IsTruncated>")),
                "neither true nor false");
  const auto page =
      ParseListObjectsV2(ListXml("",
                                 "<IsTruncated> true </IsTruncated><NextContinuationToken>tok1"
                                 "</NextContinuationToken>"));
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->is_truncated);
  EXPECT_EQ(page->next_continuation_token, "tok1");
}

// fuzz/reproducers/s3_xml/list_objects_v2_is_truncated_use_after_scope.xml: <IsTruncated>
// was read through a view of a destroyed temporary (ASan: stack-use-after-scope, seen with
// clang; a short value lives in the temporary's own buffer).
TEST(ParseListObjectsV2, IsTruncatedOfAMinimalPage) {
  const auto page =
      ParseListObjectsV2("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_FALSE(page->is_truncated);
  EXPECT_TRUE(page->objects.empty());
  const auto truncated = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t"
      "</NextContinuationToken></ListBucketResult>");
  ASSERT_TRUE(truncated.ok()) << truncated.status().ToString();
  EXPECT_TRUE(truncated->is_truncated);
}

TEST(ParseListObjectsV2, RefusesMalformedDocumentsAndOtherRoots) {
  ExpectCorrupt(ParseListObjectsV2(""), "malformed XML");
  ExpectCorrupt(ParseListObjectsV2("not xml at all"), "malformed XML");
  ExpectCorrupt(ParseListObjectsV2("<ListBucketResult><Contents><Key>a</Key>"), "malformed XML");
  ExpectCorrupt(ParseListObjectsV2("<ListBucketResult><Key>a</Size></ListBucketResult>"),
                "malformed XML");
  ExpectCorrupt(ParseListObjectsV2("<ListBucketResult attr=></ListBucketResult>"), "malformed XML");
  ExpectCorrupt(ParseListObjectsV2("<html><body>captive portal</body></html>"),
                "its root is <html>");
  ExpectCorrupt(ParseListObjectsV2("<Error><Code>AccessDenied</Code></Error>"),
                "its root is <Error>");
  ExpectCorrupt(ParseListObjectsV2("<ListBucketResult/><ListBucketResult/>"), "2 root elements");
  std::string with_nul = "<ListBucketResult>";
  with_nul.push_back('\0');
  with_nul.append("</ListBucketResult>");
  ExpectCorrupt(ParseListObjectsV2(with_nul), "NUL");
  // A NUL character reference would silently cut a key in a NUL-terminated parser.
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("a&#0;b"))), "NUL");
  ExpectCorrupt(ParseListObjectsV2(ListXml(Entry("a&#x000;b"))), "NUL");
  EXPECT_TRUE(ParseListObjectsV2(ListXml(Entry("a&#10;b"))).ok());
}

TEST(ParseListObjectsV2, EntitiesFromADoctypeAreNeverExpanded) {
  // "Billion laughs": each level multiplies by ten. pugixml does not expand declared
  // entities, so the key stays the literal reference and memory stays small.
  std::string doctype = "<!DOCTYPE ListBucketResult [<!ENTITY lol0 \"lol\">";
  for (int i = 1; i <= 9; ++i) {
    doctype += "<!ENTITY lol" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j) doctype += "&lol" + std::to_string(i - 1) + ";";
    doctype += "\">";
  }
  doctype += "<!ENTITY ext SYSTEM \"file:///etc/passwd\">]>";
  const auto page = ParseListObjectsV2(doctype + ListXml(Entry("&lol9;") + Entry("&ext;")));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "&lol9;");  // the reference, verbatim: nothing expanded
  EXPECT_EQ(page->objects[1].key, "&ext;");   // and no file read
}

TEST(ParseListObjectsV2, DeepNestingCostsNoStack) {
  // 200,000 nested elements inside an entry: parsed without recursion; only the direct
  // children of <Contents> are read.
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "<a>";
  for (int i = 0; i < 200000; ++i) deep += "</a>";
  const auto page =
      ParseListObjectsV2(ListXml("<Contents>" + deep + "<Key>k</Key><Size>1</Size></Contents>"));
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "k");
  // And unclosed at that depth: an error, not a crash.
  ExpectCorrupt(ParseListObjectsV2("<ListBucketResult>" + deep.substr(0, 600000)), "malformed");
}

TEST(ParseInitiateMultipartUploadResult, UploadId) {
  const auto id = ParseInitiateMultipartUploadResult(
      "<?xml version=\"1.0\"?><InitiateMultipartUploadResult xmlns=\"x\"><Bucket>b</Bucket>"
      "<Key>k</Key><UploadId>VXBsb2FkIElE&amp;x</UploadId></InitiateMultipartUploadResult>");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "VXBsb2FkIElE&x");
  for (const char* bad :
       {"<InitiateMultipartUploadResult/>",
        "<InitiateMultipartUploadResult><UploadId></UploadId>"
        "</InitiateMultipartUploadResult>",
        "<Error><UploadId>x</UploadId></Error>", "<InitiateMultipartUploadResult>", ""}) {
    const auto r = ParseInitiateMultipartUploadResult(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << bad;
  }
}

TEST(ParseListMultipartUploadsResult, UploadIds) {
  const auto ids = ParseListMultipartUploadsResult(
      "<ListMultipartUploadsResult><Bucket>b</Bucket><UploadIdMarker/>"
      "<Upload><Key>a</Key><UploadId>u1</UploadId></Upload>"
      "<Upload><Key>b</Key><UploadId>u2</UploadId></Upload></ListMultipartUploadsResult>");
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, (std::vector<std::string>{"u1", "u2"}));  // not the <UploadIdMarker>
  const auto none = ParseListMultipartUploadsResult("<ListMultipartUploadsResult/>");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(ParseListMultipartUploadsResult("<ListBucketResult/>").ok());
  EXPECT_FALSE(
      ParseListMultipartUploadsResult("<ListMultipartUploadsResult><Upload><Key>a</Key></Upload>"
                                      "</ListMultipartUploadsResult>")
          .ok());
}

TEST(ParseS3ErrorBody, S3AndStsErrorDocuments) {
  S3Error e;
  EXPECT_TRUE(ParseS3ErrorBody(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone &amp; lost</Message>"
      "<Key>k</Key><RequestId>R1</RequestId></Error>",
      &e));
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "gone & lost");
  EXPECT_EQ(e.request_id, "R1");

  S3Error sts;
  EXPECT_TRUE(ParseS3ErrorBody(
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
      "<Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform "
      "sts:AssumeRole</Message></Error><RequestId>c6104cbe-af31</RequestId></ErrorResponse>",
      &sts));
  EXPECT_EQ(sts.code, "AccessDenied");
  EXPECT_EQ(sts.message, "not authorized to perform sts:AssumeRole");
  EXPECT_EQ(sts.request_id, "c6104cbe-af31");

  // moto's (and EC2's) form: an <Errors> list, CDATA messages.
  S3Error listed;
  EXPECT_TRUE(ParseS3ErrorBody(
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error><Code>"
      "AccessDenied</Code><Message><![CDATA[User: arn:aws:iam::1:user/u is not authorized]]>"
      "</Message><Type>Sender</Type></Error></Errors><RequestID>r-9</RequestID></ErrorResponse>",
      &listed));
  EXPECT_EQ(listed.code, "AccessDenied");
  EXPECT_EQ(listed.message, "User: arn:aws:iam::1:user/u is not authorized");
  EXPECT_EQ(listed.request_id, "r-9");

  // Fields are cut and made printable.
  S3Error long_one;
  EXPECT_TRUE(ParseS3ErrorBody(
      "<Error><Code>X</Code><Message>" + std::string(5000, 'm') + "\x01</Message></Error>",
      &long_one));
  EXPECT_LT(long_one.message.size(), 500u);
  EXPECT_EQ(long_one.message.find('\x01'), std::string::npos);
}

TEST(ParseS3ErrorBody, AnythingElseLeavesTheErrorAlone) {
  S3Error e;
  e.code = "before";
  e.message = "kept";
  for (const std::string& body :
       {std::string(""), std::string("not xml"), std::string("<html><body>502 Bad Gateway</body>"),
        std::string("<html><head><title>502</title></head><body>Bad Gateway</body></html>"),
        std::string("<Error><Code>x</Code>"),
        std::string("<ErrorResponse><Code>x</Code>"
                    "</ErrorResponse>"),
        std::string("<ListBucketResult/>")}) {
    EXPECT_FALSE(ParseS3ErrorBody(body, &e)) << body;
    EXPECT_EQ(e.code, "before") << body;
    EXPECT_EQ(e.message, "kept") << body;
  }
}

TEST(CompleteMultipartUploadBody, PartsInOrderWithEscapedETags) {
  EXPECT_EQ(CompleteMultipartUploadBody({"\"a1\"", "\"b<&>2\""}),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber><ETag>\"a1\"</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>\"b&lt;&amp;&gt;2\"</ETag></Part>"
            "</CompleteMultipartUpload>");
  EXPECT_EQ(CompleteMultipartUploadBody({}),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>");
}

constexpr char kAssumeRoleXml[] =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    "<AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>"
    "<Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn></AssumedRoleUser>"
    "<Credentials><AccessKeyId>ASIAEXAMPLEKEY01</AccessKeyId>"
    "<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>"
    "<SessionToken>FQoGZXIvYXdzEXAMPLETOKEN+/=</SessionToken>"
    "<Expiration>2030-01-02T03:04:05.123Z</Expiration></Credentials>"
    "<PackedPolicySize>6</PackedPolicySize></AssumeRoleResult>"
    "<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></AssumeRoleResponse>";

TEST(ParseAssumeRoleResponse, Credentials) {
  const auto c = ParseAssumeRoleResponse(kAssumeRoleXml);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAEXAMPLEKEY01");
  EXPECT_EQ(c->secret_access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(c->session_token, "FQoGZXIvYXdzEXAMPLETOKEN+/=");
  ASSERT_TRUE(c->expiration.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*c->expiration), 1893553445);
  EXPECT_EQ(c->source, "");
}

TEST(ParseAssumeRoleResponse, MissingOrBrokenFieldsNeverQuoteSecrets) {
  const std::string good = kAssumeRoleXml;
  auto without = [&](const std::string& element) {
    const size_t a = good.find("<" + element + ">");
    const size_t b = good.find("</" + element + ">") + element.size() + 3;
    return good.substr(0, a) + good.substr(b);
  };
  for (const char* field : {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}) {
    const auto c = ParseAssumeRoleResponse(without(field));
    ASSERT_FALSE(c.ok()) << field;
    EXPECT_EQ(c.status().code(), StatusCode::kCorruptData);
    EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status().message();
    EXPECT_EQ(c.status().message().find("EXAMPLEKEY"), std::string::npos);
    EXPECT_EQ(c.status().message().find("EXAMPLETOKEN"), std::string::npos);
  }
  std::string bad_time = good;
  bad_time.replace(bad_time.find("2030-01-02T03:04:05.123Z"), 24, "tomorrow");
  const auto t = ParseAssumeRoleResponse(bad_time);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("unreadable <Expiration> 'tomorrow'"), std::string::npos);
  EXPECT_EQ(t.status().message().find("EXAMPLEKEY"), std::string::npos);
  EXPECT_FALSE(ParseAssumeRoleResponse("<AssumeRoleResponse/>").ok());
  EXPECT_FALSE(ParseAssumeRoleResponse("<ErrorResponse><Error><Code>AccessDenied</Code></Error>"
                                       "</ErrorResponse>")
                   .ok());
  EXPECT_FALSE(ParseAssumeRoleResponse(good.substr(0, good.size() / 2)).ok());
}

// fuzz/reproducers/s3_xml/assume_role_expiration_*: an <Expiration> outside what
// system_clock holds (ns since 1970: 1677..2262) overflowed (UBSan) when converted.
TEST(ParseAssumeRoleResponse, ExpirationsOutsideTheClocksRange) {
  auto with_expiration = [](const std::string& expiration) {
    std::string xml = kAssumeRoleXml;
    xml.replace(xml.find("2030-01-02T03:04:05.123Z"), 24, expiration);
    return ParseAssumeRoleResponse(xml);
  };
  const auto far = with_expiration("2300-01-01T00:00:00Z");
  ASSERT_TRUE(far.ok()) << far.status().ToString();
  ASSERT_TRUE(far->expiration.has_value());
  EXPECT_EQ(*far->expiration, std::chrono::system_clock::time_point::max());
  EXPECT_TRUE(with_expiration("9999-12-31T23:59:59Z").ok());
  for (const char* bad : {"60-1-0T03:04:05", "0060-01-01T03:04:05Z", "1969-12-31T23:59:59Z",
                          "1700-01-01T00:00:00Z", "2030-02-30T00:00:00Z", "2030-01-02T24:00:00Z",
                          "+2030-01-02T03:04:05Z", "2030-1-2T3:4:5Z"}) {
    const auto c = with_expiration(bad);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("unreadable <Expiration>"), std::string::npos) << bad;
  }
}

TEST(BodyExcerpt, VisibleTextShortPrintableAndWithoutTokens) {
  EXPECT_EQ(BodyExcerpt("<html><head><title>502 Bad Gateway</title></head>\r\n<body>\n"
                        "<h1>Bad   Gateway</h1><p>nginx</p></body></html>"),
            "502 Bad Gateway Bad Gateway nginx");
  EXPECT_EQ(BodyExcerpt("plain\ttext\x01\xff"), "plain text??");
  EXPECT_EQ(BodyExcerpt(""), "");
  // Key- and token-like runs are redacted, short words and ids are kept.
  const std::string token = "FwoGZXIvYXdzEJr//////////wEaDLkH0Qx8s9K3JmWq+iKCAf4+==";
  const std::string echoed =
      "<pre>X-Amz-Security-Token: " + token + "\nrequest id 4442587FB7D0A2F9</pre>";
  const std::string excerpt = BodyExcerpt(echoed);
  EXPECT_EQ(excerpt, "X-Amz-Security-Token: [redacted] request id 4442587FB7D0A2F9");
  // Long bodies are cut; a run cut at the end is redacted whatever its length.
  const std::string long_body = std::string(150, 'a') + " " + std::string(5000, 'b');
  const std::string cut = BodyExcerpt(long_body, 100);
  EXPECT_LE(cut.size(), 103u);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  const std::string cut_token = BodyExcerpt("token " + std::string(20000, 'Q'), 100);
  EXPECT_EQ(cut_token, "token [redacted]...");
}

}  // namespace
}  // namespace orchard::s3internal
