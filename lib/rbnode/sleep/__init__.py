"""Sleep mode: the wake cycle (sleeper), its state in RTC memory (rtcstate), publishing
under the wake budget (wakenet), records kept on flash (backlog), the early wake (wakeline)."""
