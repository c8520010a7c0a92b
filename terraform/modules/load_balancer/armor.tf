# Cloud Armor in front of every backend. Rules run lowest priority first and
# the first terminal action wins, so the WAF rules come before the per-IP rate
# rule (whose conforming action, allow, ends the evaluation).
#
# About the preconfigured WAF rules: conversation inputs are free text that
# legitimately contains SQL, shell and HTML (people paste code into prompts),
# so the SQLi/XSS/LFI/RCE signatures run in preview by default: they log what
# they would block, nothing is refused. Enforce them (waf_preview = false)
# only after reading those logs. Cloud Armor inspects only the first part of
# a request body; the gateway's own validation still applies to all of it.

locals {
  waf_rules = {
    "sqli-v33-stable"             = 1000
    "xss-v33-stable"              = 1010
    "lfi-v33-stable"              = 1020
    "rce-v33-stable"              = 1030
    "protocolattack-v33-stable"   = 1040
    "scannerdetection-v33-stable" = 1050
  }
}

resource "google_compute_security_policy" "this" {
  project     = var.project_id
  name        = "${var.name}-armor"
  description = "Gateway edge policy: Log4Shell probes, WAF signatures, per-IP rate-based ban."
  type        = "CLOUD_ARMOR"

  advanced_options_config {
    # Lets the WAF read JSON bodies as JSON instead of as opaque text.
    json_parsing = "STANDARD"
    log_level    = "NORMAL"
  }

  # Log4j JNDI lookups: no prompt needs them, always refused.
  rule {
    action      = "deny(403)"
    priority    = 900
    description = "Log4j (CVE-2021-44228) lookups"
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  dynamic "rule" {
    for_each = local.waf_rules
    content {
      action      = "deny(403)"
      priority    = rule.value
      preview     = var.waf_preview
      description = "Preconfigured WAF ${rule.key}"
      match {
        expr {
          expression = "evaluatePreconfiguredWaf('${rule.key}', {'sensitivity': ${var.waf_sensitivity}})"
        }
      }
    }
  }

  # A coarse shield against floods from one address; per-key limits are the
  # gateway's own (Redis). Callers behind one NAT share an address: size the
  # threshold for that.
  rule {
    action      = "rate_based_ban"
    priority    = 5000
    description = "Per-IP rate-based ban"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action   = "allow"
      exceed_action    = "deny(429)"
      enforce_on_key   = "IP"
      ban_duration_sec = var.ip_ban_duration_sec
      rate_limit_threshold {
        count        = var.ip_requests_per_minute
        interval_sec = 60
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Default: allow"
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}
