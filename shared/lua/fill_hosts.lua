-- Fill the free slots of a batch of hosts (those of a crawl just resumed, or cancelled: filling
-- drops an ended crawl's backlogs and gives its hosts to the other crawls waiting on them).
-- KEYS: (frontier.lua's head)
-- ARGV: (frontier.lua's head), then the hosts
-- Returns the number of hosts filled.
for i = F.arg, #ARGV do
  touch(ARGV[i], nil)
end
fill_touched()
flush_stats()
return #ARGV - F.arg + 1
